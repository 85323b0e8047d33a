"""The MLflow Prompt Registry: each assistant's prompt, its versions and the aliases that serve.

A prompt is registered under the assistant's name; a version carries the template
and, as MLflow's `model_config`, the model parameters (model_name, temperature,
top_p). Aliases: `production` marks what serves, `candidate` a version under
evaluation. An MLflow alias points at one version, so "the candidates" are the
version holding `candidate` plus every version newer than production: a version
someone registers through MLflow's own client is evaluated without further steps,
and older versions that production replaced are retired. A candidate that loses
`evaluation.retire_after_losses` scheduled evaluations in a row is retired too: it
loses the `candidate` alias and carries the reason in its `continuum.retired` tag.

Every version Continuum registers records the hash of the tool schemas it was written
for (tag `continuum.tools_sha256`, the schemas kept in S3 first; see `tool_schemas`), so
its logged tool calls are later validated against those schemas, not today's.

An error is not an absence: only MLflow's RESOURCE_DOES_NOT_EXIST means "no such
prompt"; any other failure (server down, timeout) raises, so the task fails and
Airflow retries it instead of treating the registry as empty.

Seeding only ever creates: the shipped versions are registered, and the aliases set,
only when the prompt does not exist yet. An existing alias is moved by `promote`
(the evaluation DAG, or an operator) and by nothing else here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from continuum.llm import tool_schemas
from continuum.llm.tool_schemas import TOOLS_TAG

if TYPE_CHECKING:
    from continuum.llm.specs import AssistantSpec, Tool

log = logging.getLogger(__name__)

PRODUCTION = "production"
CANDIDATE = "candidate"
PREVIOUS_TAG = "continuum.previous_production"
SOURCE_TAG = "continuum.source"
WINDOW_TAG = "continuum.window"  # the evaluation window an optimiser version was registered for
RETIRED_TAG = "continuum.retired"  # why a candidate stopped competing
LOSSES_TAG = "continuum.losses"  # consecutive scheduled evaluations lost
LAST_EVALUATED_TAG = "continuum.last_evaluated"  # the window that last updated LOSSES_TAG


def _client():
    import mlflow

    return mlflow.MlflowClient()


def _register(
    name: str,
    template: str,
    params: dict[str, Any],
    message: str,
    source: str,
    tools: list[Tool],
    tags: dict[str, str] | None = None,
) -> str:
    """Register a version tagged with its tools' hash; the schemas are stored first, so a tag
    never names schemas that are not there."""
    import mlflow

    tags = {**(tags or {}), TOOLS_TAG: tool_schemas.store(name, tools)}
    config = {"model_name": params.get("model")} if params.get("model") else {}
    config |= {k: v for k, v in params.items() if k != "model" and v is not None}
    version = mlflow.genai.register_prompt(
        name=name,
        template=template,
        commit_message=message,
        tags={SOURCE_TAG: source, **tags},
        model_config=config or None,
    )
    return str(version.version)


def _registered(name: str):
    """The prompt's registry entry (aliases, tags), or None only when it does not exist.

    Not `MlflowClient.get_prompt`: in MLflow 3.17 it returns None on *any* exception
    (`AbstractStore.get_prompt`), so a server outage would read as "no prompt" and
    re-seed or promote. Not `MlflowClient.get_registered_model` either: it hides
    prompts. The registry client underneath raises RESOURCE_DOES_NOT_EXIST for a
    missing name and lets every other error through.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        return _client()._get_registry_client().get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise


def exists(name: str) -> bool:
    return _registered(name) is not None


def seed(spec: AssistantSpec) -> list[str]:
    """Register the shipped versions when the prompt does not exist yet; returns what was registered.

    `production` goes to the first version flagged `production: true` in the YAML
    (else version 1), `candidate` to the newest other one. Nothing happens when the
    prompt exists, whoever created it.
    """
    import mlflow

    if not spec.prompts or exists(spec.name):
        return []
    registered = []
    for i, shipped in enumerate(spec.prompts, start=1):
        params = {"model": shipped.model, "temperature": shipped.temperature, "top_p": shipped.top_p}
        message = shipped.description or f"shipped version {i}"
        registered.append(_register(spec.name, shipped.template, params, message, "shipped", spec.tools))
    flagged = [
        v for v, p in zip(registered, spec.prompts, strict=True) if (p.model_extra or {}).get("production")
    ]
    production_version = flagged[0] if flagged else registered[0]
    mlflow.genai.set_prompt_alias(spec.name, PRODUCTION, int(production_version))
    others = [v for v in registered if v != production_version]
    if others:
        mlflow.genai.set_prompt_alias(spec.name, CANDIDATE, int(others[-1]))
    log.info(
        "event=prompt_seeded prompt=%s versions=%s production=%s",
        spec.name,
        ",".join(registered),
        production_version,
    )
    return registered


def _params(version) -> dict[str, Any]:
    config = dict(version.model_config or {})
    if "model_name" in config:
        config["model"] = config.pop("model_name")
    return config


def versions(name: str) -> list[dict[str, Any]]:
    """Every version, oldest first: version, template, params, aliases, tags, message."""
    client = _client()
    if _registered(name) is None:
        return []
    found, token = [], None
    while True:
        page = client.search_prompt_versions(name, max_results=100, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            break
    result = []
    for listed in sorted(found, key=lambda v: int(v.version)):
        # search does not return aliases; the single-version lookup does.
        full = client.get_prompt_version(name, listed.version)
        result.append(
            {
                "version": str(full.version),
                "template": full.template,
                "params": _params(full),
                "aliases": sorted(full.aliases or []),
                "tags": {k: v for k, v in (full.tags or {}).items() if not k.startswith("_mlflow")},
                "message": full.commit_message,
            }
        )
    return result


def _alias(name: str, alias: str) -> str | None:
    """The version `alias` points at; None when the prompt or the alias does not exist."""
    entry = _registered(name)
    if entry is None:
        return None
    # The aliases come with the prompt: no per-alias lookup whose "not found" shares
    # INVALID_PARAMETER_VALUE with real errors.
    version = (entry.aliases or {}).get(alias)
    return None if version is None else str(version)


def production(name: str) -> str | None:
    """The version the `production` alias points at, or None."""
    return _alias(name, PRODUCTION)


def candidates(name: str, all_versions: list[dict[str, Any]] | None = None) -> list[str]:
    """The `candidate` version plus every version newer than production, never production itself
    nor a retired one. `all_versions` is what `versions(name)` returned, when the caller has it."""
    all_versions = versions(name) if all_versions is None else all_versions
    current = production(name)
    found = set()
    for entry in all_versions:
        if entry["version"] == current or RETIRED_TAG in entry["tags"]:
            continue
        if CANDIDATE in entry["aliases"] or (current is not None and int(entry["version"]) > int(current)):
            found.add(entry["version"])
        elif current is None:
            found.add(entry["version"])  # nothing serves yet: every version competes
    return sorted(found, key=int)


def promote(name: str, version: str) -> dict[str, Any]:
    """Point `production` at `version`; the version it replaces is kept in a prompt tag.

    A `candidate` alias on the promoted version is removed (it is no longer under
    evaluation). Promoting the current production is a no-op, so a retried task is safe.
    """
    import mlflow

    version = str(version)
    before = production(name)
    if before == version:
        return {
            "prompt": name,
            "previous": (_registered(name).tags or {}).get(PREVIOUS_TAG),
            "production": version,
        }
    mlflow.genai.set_prompt_alias(name, PRODUCTION, int(version))
    if before is not None:
        _client().set_prompt_tag(name, PREVIOUS_TAG, before)
    if _alias(name, CANDIDATE) == version:
        mlflow.genai.delete_prompt_alias(name, CANDIDATE)
    log.info("event=prompt_promoted prompt=%s from=%s to=%s", name, before, version)
    return {"prompt": name, "previous": before, "production": version}


def registered_for_window(name: str, window: str) -> list[dict[str, Any]]:
    """The optimiser versions registered for `window` (see `register_candidate`), oldest first."""
    return [v for v in versions(name) if v["tags"].get(WINDOW_TAG) == window]


def register_candidate(
    name: str,
    template: str,
    params: dict[str, Any],
    message: str,
    window: str | None = None,
    *,
    tools: list[Tool],
) -> str:
    """Register a new version (e.g. from the optimiser); being newer than production makes it a candidate.

    `tools` are the spec's tools the template was written for (no default: a forgotten
    argument would register a version whose calls are judged against the wrong schemas).
    With `window`, the version is tagged with it and registered once: the same template,
    parameters and tools proposed again for that window (a retried or cleared task)
    return the version registered before.
    """
    if window is not None:
        sha = tool_schemas.digest(tools)
        for entry in registered_for_window(name, window):
            same_tools = entry["tags"].get(TOOLS_TAG) == sha
            if entry["template"] == template and _same_params(entry["params"], params) and same_tools:
                log.info("event=prompt_candidate_exists prompt=%s version=%s window=%s", name, entry["version"], window)
                return entry["version"]
    tags = {WINDOW_TAG: window} if window is not None else None
    version = _register(name, template, params, message, "optimizer", tools, tags)
    log.info("event=prompt_candidate_registered prompt=%s version=%s window=%s", name, version, window)
    return version


def _same_params(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    wanted = {k: v for k, v in wanted.items() if v is not None}
    return {k: str(v) for k, v in stored.items()} == {k: str(v) for k, v in wanted.items()}


def record_results(name: str, window: str, losers: list[str], others: list[str], retire_after: int) -> dict[str, str]:
    """Count consecutive losses per candidate; retire those reaching `retire_after`. Returns {version: reason}.

    `losers` lost this (scheduled) evaluation with enough evidence; `others` were compared
    and did not lose, which ends their streak. A window is counted once per version
    (`continuum.last_evaluated`), so a retried task does not count a loss twice.
    """
    client = _client()
    tagged = {v["version"]: v["tags"] for v in versions(name)}
    retired: dict[str, str] = {}
    for version in others:
        tags = tagged.get(str(version), {})
        if tags.get(LAST_EVALUATED_TAG) != window and RETIRED_TAG not in tags:
            client.set_prompt_version_tag(name, str(version), LOSSES_TAG, "0")
            client.set_prompt_version_tag(name, str(version), LAST_EVALUATED_TAG, window)
    for version in losers:
        tags = tagged.get(str(version), {})
        if RETIRED_TAG in tags:
            continue
        losses = int(tags.get(LOSSES_TAG, "0"))
        if tags.get(LAST_EVALUATED_TAG) != window:
            losses += 1
            client.set_prompt_version_tag(name, str(version), LOSSES_TAG, str(losses))
            client.set_prompt_version_tag(name, str(version), LAST_EVALUATED_TAG, window)
        if losses >= retire_after:
            retired[str(version)] = retire(name, str(version), f"lost {losses} scheduled evaluations in a row (last: {window})")
    return retired


def retire(name: str, version: str, reason: str) -> str:
    """Take `version` out of the candidates: the reason goes into its tag, the `candidate` alias goes."""
    import mlflow

    # Alias first, tag last: a retry after a failure in between still finds it not retired.
    if _alias(name, CANDIDATE) == version:
        mlflow.genai.delete_prompt_alias(name, CANDIDATE)
    _client().set_prompt_version_tag(name, version, RETIRED_TAG, reason)
    log.info("event=prompt_candidate_retired prompt=%s version=%s", name, version)
    return reason
