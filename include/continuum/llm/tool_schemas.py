"""The tool schemas a prompt version was written for: their hash on the version, the schemas in S3.

A prompt is written against a set of tools. When the spec's tools change later (a
required argument added, one renamed), the calls an older version logs were right for
the tools it served with, and judging them against today's schemas would count every
such call as invalid. So a version registered by Continuum carries the sha256 of the
canonical JSON of its tools (tag `continuum.tools_sha256`), and the schemas themselves
are kept, once per hash, under `storage.LlmKeys.tool_schemas`. `tool_calls_valid` then
validates a conversation against the schemas of the version that served it; a version
registered before hashes existed (or by hand through MLflow) falls back to the spec's
current tools, and `serving` says which was used.

What is read back is checked before use: the tag must be a sha256 hex digest, the
stored bytes must hash to it, and the content must be valid tools with valid JSON
schemas. A missing object for a recorded hash, or an S3 error, raises: it is never
read as "no hash recorded".
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from continuum import storage

if TYPE_CHECKING:
    from continuum.llm.specs import AssistantSpec, Tool

TOOLS_TAG = "continuum.tools_sha256"
CHANGED = "tool schemas changed since this version was written"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ToolSchemasError(ValueError):
    """A recorded tool-schema hash or its stored schemas cannot be trusted or found."""


def canonical(tools: list[Tool]) -> bytes:
    """The tools as canonical JSON: sorted by name, keys sorted, no whitespace, UTF-8."""
    dumped = sorted((t.model_dump(mode="json") for t in tools), key=lambda t: t["name"])
    return json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(tools: list[Tool]) -> str:
    return hashlib.sha256(canonical(tools)).hexdigest()


def store(assistant: str, tools: list[Tool]) -> str:
    """Keep the schemas under their hash (written once: the key names its content); returns the hash."""
    data = canonical(tools)
    sha = hashlib.sha256(data).hexdigest()
    key = storage.LlmKeys(assistant).tool_schemas(sha)
    if not storage.exists(key):
        storage.put_bytes(key, data, "application/json")
    return sha


def load(assistant: str, sha: str) -> list[Tool]:
    """The tools stored under `sha`, checked: the hash format, the bytes' hash, the tools and their schemas."""
    import jsonschema
    from pydantic import TypeAdapter, ValidationError

    from continuum.llm.specs import Tool

    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ToolSchemasError(f"{assistant}: tag {TOOLS_TAG}={sha!r} is not a sha256 hex digest; fix or delete the tag")
    key = storage.LlmKeys(assistant).tool_schemas(sha)
    if not storage.exists(key):
        raise ToolSchemasError(f"{assistant}: no tool schemas at {storage.uri(key)} for {TOOLS_TAG}={sha}")
    data = storage.get_bytes(key)
    if hashlib.sha256(data).hexdigest() != sha:
        raise ToolSchemasError(f"{assistant}: {storage.uri(key)} does not hash to {sha}: it was altered")
    try:
        tools = TypeAdapter(list[Tool]).validate_json(data)
        for tool in tools:
            jsonschema.validators.validator_for(tool.parameters).check_schema(tool.parameters)
    except (ValidationError, jsonschema.SchemaError) as exc:
        raise ToolSchemasError(f"{assistant}: {storage.uri(key)} holds no valid tools: {exc}".splitlines()[0]) from exc
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise ToolSchemasError(f"{assistant}: {storage.uri(key)} names a tool twice: {names}")
    return tools


@dataclass(frozen=True)
class Serving:
    """The tools a version's calls are validated against, and where they came from."""

    tools: list[Tool]
    sha256: str | None  # recorded on the version; None when it recorded none
    validated_against: Literal["version", "spec"]
    changed: bool | None  # recorded hash differs from the spec's tools; None when unknown

    def describe(self) -> dict[str, Any]:
        """What the summary and decision record say about it."""
        return {
            "sha256": self.sha256,
            "validated_against": self.validated_against,
            "changed": self.changed,
            "note": CHANGED if self.changed else None,
        }


def fallback(spec: AssistantSpec) -> Serving:
    """For a version that recorded no hash (registered before hashes, by hand, or not registered)."""
    return Serving(list(spec.tools), None, "spec", None)


def serving(spec: AssistantSpec, versions: list[dict[str, Any]]) -> dict[str, Serving]:
    """Per registered version (as `prompts.versions` lists them): the tools its calls are judged by.

    Each recorded hash is read from S3 once; the spec's own hash needs no read.
    """
    current = digest(spec.tools)
    loaded: dict[str, list[Tool]] = {current: list(spec.tools)}
    result: dict[str, Serving] = {}
    for entry in versions:
        sha = entry["tags"].get(TOOLS_TAG)
        if sha is None:
            result[entry["version"]] = fallback(spec)
            continue
        if sha not in loaded:
            loaded[sha] = load(spec.name, sha)
        result[entry["version"]] = Serving(loaded[sha], sha, "version", sha != current)
    return result


def registered(spec: AssistantSpec) -> dict[str, Serving]:
    """`serving` for every version in the prompt registry (an MLflow error raises)."""
    from continuum.llm import prompts

    return serving(spec, prompts.versions(spec.name))
