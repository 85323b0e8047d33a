"""The blessing truth table, and one comparison of two real models on the same holdout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from continuum import blessing, training
from continuum.specs import DomainSpec


def _spec(metric: str = "accuracy", floor: float = 0.85, **blessing_fields) -> DomainSpec:
    return DomainSpec.model_validate(
        {
            "name": "bless_test",
            "description": "test",
            "owner": "tests",
            "data": {
                "target": "label",
                "id_column": "id",
                "columns": [
                    {"name": "id", "type": "string"},
                    {"name": "x", "type": "float"},
                    {"name": "region", "type": "category"},
                    {"name": "label", "type": "int", "allowed": [0, 1]},
                ],
            },
            "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
            "monitoring": {"primary_metric": metric, "floor": floor},
            "blessing": {"segment_column": "region", **blessing_fields},
        }
    )


@pytest.mark.parametrize(
    ("challenger", "champion", "blessed", "reason"),
    [
        (0.90, None, True, None),  # no champion: only the floor
        (0.83, None, False, "accuracy 0.83 below floor 0.85"),
        (0.85, None, True, None),  # exactly on the floor passes
        (0.86, 0.90, False, "accuracy 0.86 worse than champion 0.9 by more than 0.01"),
        (0.89, 0.90, True, None),  # exactly max_degradation worse still passes (no float noise)
        (0.95, 0.90, True, None),
        (0.80, 0.90, False, "accuracy 0.8 below floor 0.85"),
        (0.90, math.nan, True, None),  # a champion metric that is undefined is not a bar
    ],
)
def test_value_and_change_thresholds(challenger, champion, blessed, reason):
    champion_metrics = None if champion is None else {"accuracy": champion}
    ok, reasons = blessing.bless(_spec(), {"accuracy": challenger}, champion_metrics)
    assert ok is blessed
    if reason:
        assert reason in reasons
    else:
        assert reasons == []


def test_both_thresholds_report_both_reasons():
    ok, reasons = blessing.bless(_spec(), {"accuracy": 0.80}, {"accuracy": 0.95})
    assert not ok and len(reasons) == 2


def test_min_value_overrides_the_monitoring_floor():
    spec = _spec(min_value=0.7)
    assert blessing.bless(spec, {"accuracy": 0.75}, None) == (True, [])
    assert blessing.bless(spec, {"accuracy": 0.65}, None) == (False, ["accuracy 0.65 below floor 0.7"])


@pytest.mark.parametrize(
    ("challenger", "champion", "blessed", "reason"),
    [
        (0.10, None, True, None),
        (0.20, None, False, "brier 0.2 above ceiling 0.15"),
        (0.12, 0.10, False, "brier 0.12 worse than champion 0.1 by more than 0.01"),
        (0.105, 0.10, True, None),
        (0.08, 0.10, True, None),  # lower brier is better: an improvement passes
    ],
)
def test_lower_is_better_metric(challenger, champion, blessed, reason):
    spec = _spec("brier", floor=0.15)
    champion_metrics = None if champion is None else {"brier": champion}
    ok, reasons = blessing.bless(spec, {"brier": challenger}, champion_metrics)
    assert ok is blessed
    assert reasons == ([reason] if reason else [])


def test_a_big_segment_below_the_floor_blocks_and_a_small_one_is_ignored():
    spec = _spec(min_segment_rows=30)
    segments = {"north": {"accuracy": 0.80}, "south": {"accuracy": 0.95}, "tiny": {"accuracy": 0.10}}
    rows = {"north": 40, "south": 200, "tiny": 5}
    ok, reasons = blessing.bless(spec, {"accuracy": 0.90}, None, segments, rows)
    assert not ok
    assert reasons == ["segment region=north accuracy 0.8 below floor 0.85"]

    rows["north"] = 29
    assert blessing.bless(spec, {"accuracy": 0.90}, None, segments, rows) == (True, [])


def test_segment_rows_may_come_with_the_segments_and_nan_segments_are_not_judged():
    spec = _spec("roc_auc", floor=0.7)
    segments = {
        "north": {"roc_auc": 0.6, "rows": 100.0},
        "east": {"roc_auc": math.nan, "rows": 100.0},  # one class only: undefined
        "west": {"roc_auc": 0.6, "rows": 3.0},
    }
    ok, reasons = blessing.bless(spec, {"roc_auc": 0.8}, None, segments)
    assert (ok, reasons) == (False, ["segment region=north roc_auc 0.6 below floor 0.7"])


def test_a_challenger_without_the_primary_metric_is_not_blessed():
    ok, reasons = blessing.bless(_spec(), {"roc_auc": 0.9}, None)
    assert not ok and "accuracy" in reasons[0]


def _frame(n: int, seed: int, noise: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    region = np.where(np.arange(n) % 2 == 0, "north", "south")
    flip = rng.random(n) < noise
    label = ((x > 0) ^ flip).astype(int)
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "x": x, "region": region, "label": label})


def test_compare_on_holdout_scores_both_models_on_the_same_rows():
    spec = _spec(floor=0.5)
    good = training.fit(spec, _frame(400, 1, noise=0.0))
    bad = training.fit(spec, _frame(400, 2, noise=0.0).assign(label=lambda f: 1 - f["label"]))
    holdout = _frame(200, 3, noise=0.0)

    comparison = blessing.compare_on_holdout(spec, good, bad, holdout)
    assert set(comparison) == {"challenger", "champion", "challenger_segments", "segment_rows", "fairness"}
    assert comparison["fairness"] is None  # no protected column to measure
    assert comparison["challenger"]["accuracy"] > 0.95 > 0.05 > comparison["champion"]["accuracy"]
    assert comparison["segment_rows"] == {"north": 100, "south": 100}
    assert set(comparison["challenger_segments"]["north"]) == {"accuracy", "roc_auc", "brier"}
    assert blessing.bless(spec, **comparison) == (True, [])

    # Swapped roles: the bad model neither clears the floor nor the champion.
    swapped = blessing.compare_on_holdout(spec, bad, good, holdout)
    ok, reasons = blessing.bless(spec, **swapped)
    assert not ok and any("worse than champion" in r for r in reasons)
    assert any(r.startswith("segment region=south") for r in reasons)

    first_run = blessing.compare_on_holdout(spec, good, None, holdout)
    assert first_run["champion"] is None and first_run["challenger"] == comparison["challenger"]


# --- the simple baselines ------------------------------------------------------------------------

BASELINES = {"class_prior": {"accuracy": 0.90, "brier": 0.09}, "logistic_regression": {"accuracy": 0.92, "brier": 0.07}}


@pytest.mark.parametrize(
    ("challenger", "gain", "blessed", "reason"),
    [
        (0.93, 0.0, True, None),
        (0.92, 0.0, True, None),  # as good as the best baseline: not worse, so it passes
        (0.91, 0.0, False, "accuracy 0.91 does not beat baseline logistic_regression 0.92 by blessing.min_gain_over_baseline 0 (gain -0.01)"),
        (0.93, 0.02, False, "does not beat baseline logistic_regression 0.92 by blessing.min_gain_over_baseline 0.02"),
        (0.91, None, True, None),  # null: measured and recorded, not judged
    ],
)
def test_the_challenger_must_beat_the_best_baseline_by_the_required_gain(challenger, gain, blessed, reason):
    spec = _spec(min_gain_over_baseline=gain)
    ok, reasons = blessing.bless(spec, {"accuracy": challenger}, None, baselines=BASELINES)
    assert ok is blessed
    if reason is None:
        assert reasons == []
    else:
        assert len(reasons) == 1 and reason in reasons[0]


def test_for_a_lower_is_better_metric_the_best_baseline_is_the_lowest():
    spec = _spec("brier", floor=0.2)
    assert blessing.best_baseline(spec, {"brier": 0.06}, BASELINES) == ("logistic_regression", pytest.approx(0.01))
    ok, reasons = blessing.bless(spec, {"brier": 0.08}, None, baselines=BASELINES)
    assert not ok and "brier 0.08 does not beat baseline logistic_regression 0.07" in reasons[0]


def test_the_default_is_not_worse_than_a_simple_model():
    assert _spec().blessing.min_gain_over_baseline == 0.0
    assert blessing.bless(_spec(), {"accuracy": 0.95}, None)[0]  # no baselines given: nothing to judge by
