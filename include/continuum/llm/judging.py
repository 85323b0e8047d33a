"""The judge on the window's logged conversations: its grades, its agreement with people, whether it counts.

Runs before the decision (task `judge_conversations`, with the `llm_default` connection).
Up to `judge.max_conversations` conversations per version are drawn with a seed from the
window, so a rerun draws the same ones and the response cache answers them all. The result,
at `LlmKeys.judge_window(window)`, is what `compare_and_decide` reads: per version the mean
judge score with its bootstrap interval, the agreement (`continuum.llm.agreement`), and
whether the judge counts this window.
"""

from __future__ import annotations

import hashlib
import logging
import random
from datetime import datetime
from typing import Any

from continuum import storage
from continuum.llm import evaluation
from continuum.llm.backends import LLMConfig, enable_tracing
from continuum.llm.live import grader_for
from continuum.llm.specs import AssistantSpec

log = logging.getLogger(__name__)


def _judged_sample(spec: AssistantSpec, conversations: list[dict], window: str) -> list[dict]:
    """Up to `judge.max_conversations` per version, drawn with a seed from the window (a rerun draws the same)."""
    by_version: dict[str, list[dict]] = {}
    for conversation in sorted(conversations, key=lambda c: str(c.get("conversation_id"))):
        by_version.setdefault(str((conversation.get("prompt") or {}).get("version")), []).append(conversation)
    seed = int(hashlib.sha256(window.encode()).hexdigest()[:8], 16)
    chosen = []
    for version in sorted(by_version):
        drawn = by_version[version]
        chosen += random.Random(seed).sample(drawn, min(spec.judge.max_conversations, len(drawn)))
    return chosen


def judge_window(spec: AssistantSpec, config: LLMConfig, window_end: datetime) -> dict[str, Any]:
    """The judge's grades of the window's logged conversations, its agreement with people, whether it counts.

    Stored at `LlmKeys.judge_window(window)`, where `compare_and_decide` reads it. Answers come
    from the response cache when the window was judged before, so a rerun calls nobody.
    """
    from continuum.llm.agreement import counts, measure
    from continuum.llm.compare import bootstrap_interval

    enable_tracing(f"{spec.name}-prompt-evaluation")
    grader = grader_for(spec, config)
    window = evaluation.window_for(spec, window_end)
    conversations, _, _ = evaluation.load_window(spec, window_end)
    rows = []
    for conversation in _judged_sample(spec, conversations, window):
        grade = grader.grade(conversation)
        rows.append(
            {
                "conversation_id": str(conversation.get("conversation_id")),
                "version": str((conversation.get("prompt") or {}).get("version")),
                "human": (conversation.get("feedback") or {}).get("rating"),
                "judge": grade["rating"],
                "reason": grade["reason"],
            }
        )
    judge = spec.judge
    agreement = measure(rows, judge.pass_rating)
    counted, reason = counts(agreement, judge.min_agreement, judge.min_rated)
    versions = {}
    for version in sorted({r["version"] for r in rows}):
        scores = [r["judge"] / 5 for r in rows if r["version"] == version and r["judge"] is not None]
        low, high = (
            bootstrap_interval(scores, spec.evaluation.confidence, spec.evaluation.bootstrap_samples)
            if scores
            else (None, None)
        )
        versions[version] = {
            "n": sum(r["version"] == version for r in rows),
            "judged": len(scores),
            "mean": round(sum(scores) / len(scores), 6) if scores else None,
            "ci": [low, high] if scores else None,
        }
    result = {
        "assistant": spec.name,
        "window": window,
        "model": grader.model,
        "counted": counted,
        "reason": reason,
        "min_agreement": judge.min_agreement,
        "agreement": agreement,
        "versions": versions,
        "cache": grader.cache.stats(),
        "rows": rows,
    }
    storage.put_json(storage.LlmKeys(spec.name).judge_window(window), result)
    _log_judge_metrics(spec, window, result)
    log.info(
        "event=llm_judged_window assistant=%s window=%s judged=%d kappa=%s counted=%s cache_hit_rate=%s",
        spec.name,
        window,
        len(rows),
        agreement["kappa"],
        counted,
        result["cache"]["hit_rate"],
    )
    return {k: v for k, v in result.items() if k != "rows"}


def _log_judge_metrics(spec: AssistantSpec, window: str, result: dict[str, Any]) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    run_id = evaluation.evaluation_run(spec, window)
    if result["agreement"]["kappa"] is not None:
        client.log_metric(run_id, "judge.kappa", result["agreement"]["kappa"])
    if result["cache"]["hit_rate"] is not None:
        client.log_metric(run_id, "judge.cache_hit_rate", result["cache"]["hit_rate"])
    for version, entry in result["versions"].items():
        if entry["mean"] is not None:
            client.log_metric(run_id, f"v{version}.judge_logged", entry["mean"])
    client.log_dict(run_id, result, "judge-logged.json")
