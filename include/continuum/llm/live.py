"""The optional steps that need a real LLM: replay + judge of candidates, and the prompt optimiser.

They run only when an OpenAI-compatible endpoint is configured (the Airflow
connection `llm_default`, turned into an `LLMConfig` by the DAG). Replayed
conversations are redacted ones from the evaluation window, so no personal data
reaches the endpoint. Results are logged to the window's evaluation run.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from datetime import datetime
from typing import Any

from continuum import storage
from continuum.llm import evaluation, prompts
from continuum.llm.backends import LLMConfig, backend_for_run
from continuum.llm.cache import CachedBackend, ResponseCache
from continuum.llm.judge import Judge, rubric_for
from continuum.llm.specs import AssistantSpec

log = logging.getLogger(__name__)


def _sample(conversations: list[dict], size: int, seed: int) -> list[dict]:
    return random.Random(seed).sample(conversations, min(size, len(conversations)))


def _tools(spec: AssistantSpec) -> list[dict]:
    return [tool.model_dump() for tool in spec.tools]


def grader_for(spec: AssistantSpec, config: LLMConfig, cache: ResponseCache | None = None) -> Judge:
    """The assistant's judge (`make_judge` from its rubric), its answers cached by request."""
    return Judge(rubric_for(spec), config, model=spec.judge.model, cache=cache or ResponseCache(spec.name))


def cached_backend(spec: AssistantSpec, config: LLMConfig) -> CachedBackend:
    """The traced openai-client backend behind the assistant's response cache."""
    backend = backend_for_run(config, experiment=f"{spec.name}-prompt-evaluation")  # calls traced to MLflow
    return CachedBackend(backend, ResponseCache(spec.name))


def judge_each(
    backend, spec: AssistantSpec, version: dict, conversations: list[dict], grader: Judge | None = None
) -> list[float | None]:
    """Replay `conversations` through one prompt version; the judge's score of each (None: no usable grade)."""
    from continuum.llm.replay import replay

    grader = grader or grader_for(spec, backend.config, getattr(backend, "cache", None))
    grades = []
    for conversation in conversations:
        replayed = replay(
            backend, conversation, version["template"], version["params"], _tools(spec), version=version["version"]
        )
        grades.append(grader.grade(replayed)["score"])
    return grades


def judge_version(
    backend, spec: AssistantSpec, version: dict, conversations: list[dict], grader: Judge | None = None
) -> dict[str, Any]:
    """Replay `conversations` through one prompt version and grade each replay."""
    grades = judge_each(backend, spec, version, conversations, grader)
    usable = [g for g in grades if g is not None]
    return {
        "n": len(grades),
        "judged": len(usable),
        "judge_mean": sum(usable) / len(usable) if usable else None,
    }


def replay_and_judge(spec: AssistantSpec, config: LLMConfig, window_end: datetime, sample: int = 20, seed: int = 0):
    """LLM-as-judge scores of production and every candidate on the same replayed sample."""
    import mlflow

    backend = cached_backend(spec, config)
    grader = grader_for(spec, config, backend.cache)
    conversations, _, _ = evaluation.load_window(spec, window_end)
    chosen = _sample(conversations, sample, seed)
    wanted = {prompts.production(spec.name), *prompts.candidates(spec.name)} - {None}
    results = {
        v["version"]: judge_version(backend, spec, v, chosen, grader)
        for v in prompts.versions(spec.name)
        if v["version"] in wanted
    }
    window = evaluation.window_for(spec, window_end)
    run_id = evaluation.evaluation_run(spec, window)
    client = mlflow.MlflowClient()
    for version, result in results.items():
        if result["judge_mean"] is not None:
            client.log_metric(run_id, f"v{version}.judge", result["judge_mean"])
    cache = backend.cache.stats()
    if cache["hit_rate"] is not None:
        client.log_metric(run_id, "replay.cache_hit_rate", cache["hit_rate"])
    client.log_dict(run_id, {**results, "cache": cache}, "judge.json")
    storage.put_json(storage.LlmKeys(spec.name).judge(window), results)
    log.info(
        "event=llm_judged assistant=%s window=%s versions=%s cache_hits=%d cache_misses=%d",
        spec.name,
        window,
        ",".join(results),
        cache["hits"],
        cache["misses"],
    )
    return {"assistant": spec.name, "window": window, "versions": results, "cache": cache}


def optimise(
    spec: AssistantSpec,
    config: LLMConfig,
    window_end: datetime,
    *,
    rounds: int = 2,
    population: int = 3,
    sample: int = 8,
    heldout: int = 24,
    seed: int = 0,
    min_gain: float = 0.0,
    confidence: float = 0.95,
    text_optimiser: str = "auto",
    gepa_metric_calls: int = 40,
) -> dict[str, Any]:
    """Propose prompt versions that beat production on the judge score; registers them as candidates.

    The window's conversations are split by `seed` into a probe of `sample` (the search
    scores on it), `heldout` conversations it never sees, and the rest (failures to reflect
    on). A finalist is registered only when its paired gain on the held-out ones is at least
    `min_gain` and positive with `confidence` (see `optimizer.propose`). A window with fewer
    than `sample + heldout` conversations registers nothing and says so. The decision (every
    finalist's probe score, held-out gain, lower bound, registered or why not) is returned
    and stored at `LlmKeys.optimiser(window)`. Once per evaluation window: the versions are
    tagged with the window, and a rerun of a window that already registered its proposals
    returns them without searching again.

    Text proposals come from GEPA (`gepa_proposer`, at most `gepa_metric_calls` graded probe
    conversations) when `text_optimiser` is "gepa", or "auto" and gepa and litellm are
    installed; otherwise from the reflection loop in `optimizer`. The temperature/top_p
    search runs either way. The decision's `optimiser` says which ran and why.
    """
    from continuum.llm.optimizer import propose, split

    chosen = _text_optimiser(text_optimiser)  # a setting that cannot run says so on every run
    window = evaluation.window_for(spec, window_end)
    decision: dict[str, Any] = {"assistant": spec.name, "window": window, "registered": [], "finalists": []}
    done = prompts.registered_for_window(spec.name, window)
    if done:
        log.info("event=llm_optimise_skipped assistant=%s window=%s reason=already_registered", spec.name, window)
        registered = [{"version": v["version"], "template": v["template"], "params": v["params"]} for v in done]
        return {**decision, "registered": registered, "reason": "this window already registered its proposals"}
    production = prompts.production(spec.name)
    if production is None:
        log.info("event=llm_optimise_skipped assistant=%s reason=no_production_prompt", spec.name)
        return {**decision, "reason": "no production prompt"}
    conversations, _, _ = evaluation.load_window(spec, window_end)
    if len(conversations) < sample + heldout:
        reason = (
            f"the window has {len(conversations)} conversations; the optimiser needs {sample} for its probe "
            f"and {heldout} held out to check a gain: nothing registered"
        )
        log.info("event=llm_optimise_skipped assistant=%s window=%s reason=too_few_conversations", spec.name, window)
        return _store({**decision, "reason": reason})
    probe, held_out, rest = split(conversations, sample, heldout, seed)
    searched = probe + rest  # everything the search may look at; never the held-out set
    failures = [c for c in searched if c.get("prompt", {}).get("version") == production]
    failures = _sample([c for c in failures if not (c.get("outcome") or {}).get("success", False)], 10, seed)
    base = next(v for v in prompts.versions(spec.name) if v["version"] == production)
    backend = cached_backend(spec, config)
    texts = None
    if chosen["text"] == "gepa":
        found = _gepa(backend, spec, base, probe, gepa_metric_calls, seed)
        texts = found["proposals"]
        chosen["gepa"] = found

    def evaluate(template: str, params: dict) -> float:
        result = judge_version(backend, spec, {"version": "probe", "template": template, "params": params}, probe)
        return result["judge_mean"] if result["judge_mean"] is not None else 0.0

    def evaluate_each(template: str, params: dict) -> list[float | None]:
        return judge_each(backend, spec, {"version": "heldout", "template": template, "params": params}, held_out)

    finalists = propose(
        backend,
        spec,
        base["template"],
        base["params"],
        failures,
        rounds=rounds,
        population=population,
        seed=seed,
        evaluate=evaluate,
        evaluate_each=evaluate_each,
        register=functools.partial(prompts.register_candidate, window=window, tools=spec.tools),
        min_gain=min_gain,
        confidence=confidence,
        keep=1,
        texts=texts,
    )
    registered = [{k: f[k] for k in ("version", "template", "params")} for f in finalists if f["registered"]]
    reason = None if finalists else "no variant beat production on the probe"
    decision = {
        **decision,
        "registered": registered,
        "finalists": finalists,
        "reason": reason or "; ".join(f["reason"] for f in finalists),
        "optimiser": chosen,
        "probe": _ids(probe),
        "heldout": _ids(held_out),
        "failures": _ids(failures),
        "cache": backend.cache.stats(),
    }
    log.info(
        "event=llm_optimised assistant=%s window=%s finalists=%d registered=%s",
        spec.name,
        window,
        len(finalists),
        json.dumps([r["version"] for r in registered]),
    )
    return _store(decision)


def _text_optimiser(wanted: str) -> dict[str, Any]:
    """Which text optimiser runs ("gepa" or "reflection") and why, for the decision record."""
    from continuum.llm.gepa_proposer import unavailable

    if wanted not in ("auto", "gepa", "reflection"):
        raise ValueError(f"text_optimiser must be auto, gepa or reflection (got '{wanted}')")
    if wanted == "reflection":
        return {"text": "reflection", "why": "text_optimiser=reflection was asked for"}
    missing = unavailable()
    if missing is None:
        return {"text": "gepa", "why": "gepa and litellm are installed and llm_default is configured"}
    if wanted == "gepa":
        raise ValueError(f"text_optimiser=gepa cannot run: {missing}; install gepa and litellm (requirements.txt)")
    log.info("event=llm_optimiser_fallback reason=%s", missing.replace(" ", "_"))
    return {"text": "reflection", "why": f"GEPA is not available ({missing}): the reflection loop ran instead"}


def _gepa(backend, spec: AssistantSpec, base: dict, probe: list[dict], calls: int, seed: int) -> dict[str, Any]:
    """GEPA's proposal for production's template, searched on the probe with production's parameters."""
    from continuum.llm.gepa_proposer import propose_texts

    def grade(template: str, conversation: dict) -> dict[str, Any]:
        return _replay_graded(backend, spec, template, base["params"], conversation)

    return propose_texts(backend, base["template"], probe, grade, max_metric_calls=calls, seed=seed)


def _replay_graded(backend, spec: AssistantSpec, template: str, params: dict, conversation: dict) -> dict[str, Any]:
    """One replay and its grade, with the replayed transcript and the judge's reason for GEPA to reflect on."""
    from continuum.llm.judge import transcript
    from continuum.llm.replay import replay

    replayed = replay(backend, conversation, template, params, _tools(spec), version="gepa")
    graded = grader_for(spec, backend.config, getattr(backend, "cache", None)).grade(replayed)
    return {**graded, "output": transcript(replayed)}


def _ids(conversations: list[dict]) -> list[str]:
    return [str(c.get("conversation_id")) for c in conversations]


def _store(decision: dict[str, Any]) -> dict[str, Any]:
    """Next to the window's judge file: what the optimiser decided and why."""
    storage.put_json(storage.LlmKeys(decision["assistant"]).optimiser(decision["window"]), decision)
    return decision
