"""The MLflow Prompt Registry: each assistant's prompt, its versions and the aliases that serve.

A prompt is registered under the assistant's name; a version carries the template
and, as MLflow's `model_config`, the model parameters (model_name, temperature,
top_p). Aliases: `production` marks what serves, `candidate` a version under
evaluation. An MLflow alias points at one version, so "the candidates" are the
version holding `candidate` plus every version newer than production: a version
someone registers through MLflow's own client is evaluated without further steps,
and older versions that production replaced are retired.

Seeding only ever creates: the shipped versions are registered, and the aliases set,
only when the prompt does not exist yet. An existing alias is moved by `promote`
(the evaluation DAG, or an operator) and by nothing else here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from continuum.llm.specs import AssistantSpec

log = logging.getLogger(__name__)

PRODUCTION = "production"
CANDIDATE = "candidate"
PREVIOUS_TAG = "continuum.previous_production"
SOURCE_TAG = "continuum.source"


def _client():
    import mlflow

    return mlflow.MlflowClient()


def _register(name: str, template: str, params: dict[str, Any], message: str, source: str) -> str:
    import mlflow

    config = {"model_name": params.get("model")} if params.get("model") else {}
    config |= {k: v for k, v in params.items() if k != "model" and v is not None}
    version = mlflow.genai.register_prompt(
        name=name,
        template=template,
        commit_message=message,
        tags={SOURCE_TAG: source},
        model_config=config or None,
    )
    return str(version.version)


def exists(name: str) -> bool:
    return _client().get_prompt(name) is not None


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
        registered.append(_register(spec.name, shipped.template, params, message, "shipped"))
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
    if client.get_prompt(name) is None:
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
    from mlflow.exceptions import MlflowException

    client = _client()
    if client.get_prompt(name) is None:
        return None
    try:
        return str(client.get_prompt_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def production(name: str) -> str | None:
    """The version the `production` alias points at, or None."""
    return _alias(name, PRODUCTION)


def candidates(name: str) -> list[str]:
    """The `candidate` version plus every version newer than production, never production itself."""
    all_versions = versions(name)
    current = production(name)
    found = set()
    for entry in all_versions:
        if entry["version"] == current:
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
            "previous": _client().get_prompt(name).tags.get(PREVIOUS_TAG),
            "production": version,
        }
    mlflow.genai.set_prompt_alias(name, PRODUCTION, int(version))
    if before is not None:
        _client().set_prompt_tag(name, PREVIOUS_TAG, before)
    if _alias(name, CANDIDATE) == version:
        mlflow.genai.delete_prompt_alias(name, CANDIDATE)
    log.info("event=prompt_promoted prompt=%s from=%s to=%s", name, before, version)
    return {"prompt": name, "previous": before, "production": version}


def register_candidate(name: str, template: str, params: dict[str, Any], message: str) -> str:
    """Register a new version (e.g. from the optimiser); being newer than production makes it a candidate."""
    version = _register(name, template, params, message, "optimizer")
    log.info("event=prompt_candidate_registered prompt=%s version=%s", name, version)
    return version
