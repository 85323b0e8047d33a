"""Prompt text proposals from GEPA (MLflow's `GepaPromptOptimizer`), searched on the probe only.

The optimiser's held-out gate decides what is registered (`optimizer.propose`); this module
only proposes. That is why it calls the optimizer object's `optimize(eval_fn, train_data,
target_prompts)` and not `mlflow.genai.optimize_prompts`: the latter registers GEPA's best
template as a new version of the prompt as soon as the search ends, before anything has
checked it on conversations the search never saw.

GEPA's reflection calls go through litellm (MLflow hands gepa `reflection_lm="openai/<model>"`,
gepa calls `litellm.completion`). Every call gets, in `reflection_lm_kwargs`, the backend's
own `openai` client and the `llm_default` base URL and key: given only api_base and api_key,
litellm would still add OPENAI_ORGANIZATION and OPENAI_PROJECT_ID from the worker's
environment as headers; the client sends none. A keyless endpoint gets a placeholder key,
never OPENAI_API_KEY. The client retries (`max_retries`), so litellm does not retry again.
litellm would fetch a model price list from GitHub when imported; `settings.CLIENT_ENV`
tells it to use its bundled copy.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from continuum.llm.backends import OpenAICompatibleBackend

log = logging.getLogger(__name__)

MIN_GEPA = (0, 0, 26)
COMPONENT = "system_prompt"
# GEPA's own instruction-proposal prompt (<curr_param>, <side_info>, the answer in ``` fences)
# plus what our rewrites must respect too; `optimizer._violation` checks it afterwards anyway.
CONSTRAINTS = (
    "\n\nThe instruction is the system prompt of a production assistant. Keep every {{variable}} "
    "placeholder as it is, keep any required disclaimer word for word, and write only the new "
    "system prompt inside the ``` block."
)

Grade = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


def unavailable() -> str | None:
    """Why GEPA cannot run here (for the optimiser decision), or None when it can."""
    for package in ("gepa", "litellm"):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return f"the {package} package is not installed"
        if package == "gepa" and _version(version) < MIN_GEPA:
            return f"gepa {version} is older than {'.'.join(map(str, MIN_GEPA))}, which MLflow's GepaPromptOptimizer needs"
    return None


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def propose_texts(
    backend: OpenAICompatibleBackend,
    base_template: str,
    probe: Sequence[Mapping[str, Any]],
    grade: Grade,
    *,
    max_metric_calls: int,
    seed: int,
) -> dict[str, Any]:
    """GEPA's best template for the probe, if it differs from the base, with what the search saw.

    `grade(template, conversation)` replays one conversation through `template` and judges
    it: {"score": 0..1 or None, "reason": str, "output": str}. One metric call is one graded
    conversation; `max_metric_calls` bounds them (the first pass over the probe included).
    Returns {"proposals": [template] or [], "initial_score", "final_score", "metric_calls"}.
    """
    if not probe:
        raise ValueError("GEPA needs at least one probe conversation")
    from mlflow.genai.optimize.optimizers import GepaPromptOptimizer

    by_id = {str(c.get("conversation_id")): c for c in probe}
    calls = {"n": 0}

    def eval_fn(candidate: dict[str, str], batch: list[dict[str, Any]]) -> list[Any]:
        return [_record(grade, candidate[COMPONENT], by_id[r["inputs"]["conversation_id"]], r, calls) for r in batch]

    config = backend.config
    key = config.api_key.get_secret_value() if config.api_key is not None else ""
    optimizer = GepaPromptOptimizer(
        reflection_model=f"openai:/{config.model}",
        max_metric_calls=max_metric_calls,
        gepa_kwargs={
            "reflection_lm_kwargs": {
                "client": backend.client,
                "api_base": config.base_url,
                "api_key": key or "no-key",
                "timeout": config.timeout_s,
                "num_retries": 0,
            },
            "reflection_prompt_template": _reflection_template(),
            "seed": seed,
            "logger": _Progress(),
        },
    )
    train = [{"inputs": _inputs(c), "expectations": {}} for c in probe]
    result = optimizer.optimize(eval_fn, train, {COMPONENT: base_template}, enable_tracking=False)
    best = (result.optimized_prompts or {}).get(COMPONENT, base_template)
    found = {
        "proposals": [best] if best.strip() != base_template.strip() else [],
        "initial_score": _rounded(result.initial_eval_score),
        "final_score": _rounded(result.final_eval_score),
        "metric_calls": calls["n"],
    }
    log.info(
        "event=gepa_searched probe=%d metric_calls=%d initial=%s final=%s proposed=%d",
        len(probe),
        calls["n"],
        found["initial_score"],
        found["final_score"],
        len(found["proposals"]),
    )
    return found


class _Progress:
    """GEPA's progress lines (it prints them by default) as one-line debug log events."""

    def log(self, message: str) -> None:
        log.debug("event=gepa_progress message=%s", " ".join(str(message).split())[:300])


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(float(score), 6)


def _reflection_template() -> str:
    from gepa.strategies.instruction_proposal import InstructionProposalSignature

    return InstructionProposalSignature.default_prompt_template + CONSTRAINTS


def _inputs(conversation: Mapping[str, Any]) -> dict[str, Any]:
    """What the reflection model sees of a probe conversation: its id and the (redacted) user turns."""
    users = [str(m.get("content") or "") for m in conversation.get("messages") or [] if m.get("role") == "user"]
    return {"conversation_id": str(conversation.get("conversation_id")), "user": users}


def _record(grade: Grade, template: str, conversation: Mapping[str, Any], row: Mapping[str, Any], calls: dict) -> Any:
    from mlflow.genai.optimize.types import EvaluationResultRecord

    graded = grade(template, conversation)
    calls["n"] += 1
    score = graded.get("score")
    return EvaluationResultRecord(
        inputs=dict(row["inputs"]),
        outputs=graded.get("output", ""),
        expectations=row.get("expectations") or {},
        score=float(score) if score is not None else 0.0,  # an unusable grade counts as a failure
        trace=None,
        rationales={"judge": str(graded.get("reason", ""))},
        individual_scores={"judge": float(score) if score is not None else 0.0},
    )
