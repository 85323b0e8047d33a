"""Repeated looks do not inflate false promotions: two equal versions through 30 looks.

A day brings many log files; every file triggers an evaluation (a look). Each look that
may promote is another chance to promote a version that is not better. The loop lets
only the deciding run (the scheduled one) move `production`; the runs triggered by the
files report. Simulated here with the library's own `summarise`, `decide` and
`may_promote` on seeded 0/1 outcomes of two versions with the same true rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from continuum.llm.compare import decide, summarise
from continuum.llm.evaluation import may_promote
from continuum.llm.specs import AssistantSpec

LOOKS = 30  # files in a day: 29 evaluations triggered by a file, then the scheduled one
PER_LOOK = 10  # conversations per version per file
REPLICATIONS = 1000
NOMINAL = 0.05
SPEC = AssistantSpec.model_validate(
    {
        "name": "shop",
        "description": "d",
        "owner": "o",
        "business": "retail",
        "primary_score": "outcome",
        "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
        "guardrails": {"safety_scores": []},
        # Evidence from the fifth file on, so most looks could promote.
        "evaluation": {"min_conversations": 50, "confidence": 0.95},
    }
)
DAY = ["asset_triggered"] * (LOOKS - 1) + ["scheduled"]
ONE_LOOK = ["not_evaluated"] * (LOOKS - 1) + ["scheduled"]  # the same data, judged once at the end


def _promotes(outcomes: dict[str, list[bool]]) -> bool:
    table = pd.DataFrame([{"version": v, "outcome": float(o)} for v, values in outcomes.items() for o in values])
    return decide(SPEC, summarise(SPEC, table), "1", ["2"])["promote"] is not None


def false_promotion(rng: np.random.Generator, run_types: list[str], rate: float = 0.3) -> bool:
    """One replication: outcomes accumulate file by file; True when a look moved production."""
    outcomes: dict[str, list[bool]] = {"1": [], "2": []}
    for run_type in run_types:
        for version in outcomes:
            outcomes[version] += list(rng.random(PER_LOOK) < rate)
        # A run that may not promote still reports; only its alias move matters here.
        if may_promote(run_type) and _promotes(outcomes):
            return True
    return False


def false_promotion_rate(run_types: list[str], seed: int) -> float:
    rng = np.random.default_rng(seed)
    return sum(false_promotion(rng, run_types) for _ in range(REPLICATIONS)) / REPLICATIONS


def test_thirty_looks_keep_false_promotions_at_or_below_nominal():
    """Equal versions, 30 looks a day: no more false promotions than one look at the same data.

    Measured without the gate (every look may promote), the rule promotes about 7 times as
    often (~1.5% vs ~0.2%): its non-overlapping 95% intervals keep even that under 5%, so the
    comparison with a single look is what shows that repeated looks add nothing.
    """
    day = false_promotion_rate(DAY, seed=1)
    once = false_promotion_rate(ONE_LOOK, seed=1)
    assert day <= NOMINAL
    assert day <= once


def test_only_scheduled_and_manual_runs_may_promote():
    assert may_promote("scheduled") and may_promote("manual") and may_promote("DagRunType.SCHEDULED")
    assert not may_promote("asset_triggered") and not may_promote("backfill") and not may_promote(None)
