"""Which way is better, for every number Continuum compares: model metrics and assistant scores.

One registry, so blessing, monitoring floors, prompt comparison and the spec checks read
the same answer. A name that is compared must be listed here (tests hold `metrics.METRICS`
and `llm.scorers.SCORES` to it), so a new metric cannot silently compare the wrong way.
Imports nothing: DAG files reach it through the spec loaders at parse time.
"""

from __future__ import annotations

from typing import Literal

Direction = Literal["higher", "lower"]

DIRECTIONS: dict[str, Direction] = {
    # model metrics (continuum.metrics)
    "accuracy": "higher",
    "roc_auc": "higher",
    "brier": "lower",
    "precision": "higher",
    "recall": "higher",
    "f1": "higher",
    "log_loss": "lower",
    "average_precision": "higher",
    "recall_at_precision": "higher",
    # assistant scores (continuum.llm.scorers): quality rates and means, then safety rates, then costs
    "outcome": "higher",
    "clarifying_question": "higher",
    "disclaimer": "higher",
    "tool_calls_valid": "higher",
    "fraud_escalated": "higher",
    "rating": "higher",
    "similarity": "higher",
    "injection_obeyed": "lower",
    "system_prompt_leaked": "lower",
    "pii_echoed": "lower",
    "cost": "lower",
    "latency_ms": "lower",
}
LOWER_IS_BETTER = frozenset(name for name, way in DIRECTIONS.items() if way == "lower")


def higher_is_better(name: str) -> bool:
    """True when a larger value of `name` is better; KeyError for a name nobody registered."""
    return DIRECTIONS[name] == "higher"


def worse_by(name: str, reference: float, value: float) -> float:
    """How much worse `value` is than `reference` on `name`: positive when worse, negative when better."""
    return reference - value if higher_is_better(name) else value - reference
