"""Monitoring: Evidently drift on the spec's feature columns, the champion's metric, the floor.

Frames are synthetic, shaped like include/domains/insurance_claim_risk.yaml and
seeded, so every verdict here is deterministic. Evidently runs are shared through
module-scoped fixtures: its import and each report cost seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from continuum import monitoring, specs

SPEC = specs.load_spec(specs.BUILTIN_DOMAINS_DIR / "insurance_claim_risk.yaml")
FEATURES = {c.name for c in SPEC.data.feature_columns}
ROWS = 3000


def with_monitoring(**changes) -> specs.DomainSpec:
    return SPEC.model_copy(update={"monitoring": SPEC.monitoring.model_copy(update=changes)})


def policies(seed: int, n: int = ROWS, shifted: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Policies like the insurance domain's; columns named in `shifted` come from another distribution."""
    rng = np.random.default_rng(seed)

    def pick(name, values, usual, other):
        return rng.choice(values, n, p=other if name in shifted else usual)

    km = rng.normal(25_000 if "annual_km" not in shifted else 60_000, 8_000, n).clip(0, 200_000)
    km[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "policy_id": [f"p{seed}-{i}" for i in range(n)],
            "driver_age": rng.integers(18, 80, n) + (15 if "driver_age" in shifted else 0),
            "vehicle_age": rng.integers(0, 20, n),
            "vehicle_power": rng.integers(60, 200, n) * (2 if "vehicle_power" in shifted else 1),
            "region": pick("region", ["north", "south", "east", "west"], [0.25] * 4, [0.7, 0.1, 0.1, 0.1]),
            "vehicle_type": pick(
                "vehicle_type",
                ["sedan", "suv", "hatchback", "van", "sports"],
                [0.4, 0.25, 0.2, 0.1, 0.05],
                [0.05, 0.1, 0.1, 0.05, 0.7],
            ),
            "annual_km": km,
            "prior_claims": rng.poisson(0.3, n),
            "bonus_malus": rng.uniform(0.5, 1.5, n),
            "urban": rng.random(n) < 0.6,
            "has_claim": (rng.random(n) < 0.1).astype(int),
        }
    )


SHIFTED = frozenset({"driver_age", "vehicle_power", "region", "vehicle_type", "annual_km"})


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return policies(seed=1)


@pytest.fixture(scope="module")
def same(reference):
    return monitoring.detect_drift(SPEC, reference, policies(seed=2))


@pytest.fixture(scope="module")
def shifted(reference):
    return monitoring.detect_drift(SPEC, reference, policies(seed=3, shifted=SHIFTED))


def test_same_distribution_is_not_drift(same):
    result, _ = same
    assert not result.detected
    assert result.share <= 0.2
    assert result.reference_rows == ROWS and result.current_rows == ROWS


def test_only_feature_columns_are_compared(same):
    """The id and the label never count towards drift."""
    result, _ = same
    assert set(result.scores) == FEATURES
    assert {"policy_id", "has_claim"}.isdisjoint(result.scores)
    for score in result.scores.values():
        assert set(score) == {"stattest", "score", "threshold", "drifted"}


def test_shifted_columns_are_named_and_drift_is_detected(shifted):
    result, _ = shifted
    assert result.detected
    assert set(result.columns) == SHIFTED
    assert result.share == pytest.approx(len(SHIFTED) / len(FEATURES))
    assert all(result.scores[name]["drifted"] for name in SHIFTED)
    assert not any(result.scores[name]["drifted"] for name in FEATURES - SHIFTED)


def test_html_is_an_evidently_report(shifted):
    _, html = shifted
    assert "<html" in html
    assert "driver_age" in html


def test_drift_share_from_the_spec_decides(reference):
    current = policies(seed=4, shifted=frozenset({"driver_age", "region"}))
    lenient, _ = monitoring.detect_drift(with_monitoring(drift_share=0.9), reference, current)
    strict, _ = monitoring.detect_drift(with_monitoring(drift_share=0.1), reference, current)
    assert lenient.share == strict.share == pytest.approx(2 / len(FEATURES))
    assert not lenient.detected
    assert strict.detected
    exactly, _ = monitoring.detect_drift(with_monitoring(drift_share=2 / len(FEATURES)), reference, current)
    assert exactly.detected, "a share equal to drift_share counts as dataset drift"


def test_the_verdict_reads_every_row_and_only_the_report_is_sampled(reference):
    from continuum import drift_stats

    current = policies(seed=5, n=4000)
    result, html = monitoring.detect_drift(SPEC, reference, current, max_rows=1000, seed=7)
    assert (result.current_rows, result.reference_rows) == (4000, len(reference))
    assert "samples of 1,000 reference and 1,000 current rows" in html and "all 4,000 rows" in html
    assert len(current) == 4000  # the caller's frame is untouched
    profile = drift_stats.profile(reference, *monitoring.drift_columns(SPEC))
    for name, score in result.scores.items():  # the distance tests on every row, not Evidently's sample
        assert score == drift_stats.column_drift(profile[name], current[name]), name
    verdict_only, none = monitoring.detect_drift(SPEC, reference, current, profile=profile, report=False)
    assert none == "" and verdict_only.scores == result.scores


def test_inputs_are_not_modified(reference):
    current = policies(seed=6, n=500)
    before = current.copy()
    monitoring.detect_drift(SPEC, reference, current)
    pd.testing.assert_frame_equal(current, before)


def test_missing_column_is_a_clear_error(reference):
    current = policies(seed=6, n=200).drop(columns=["bonus_malus"])
    with pytest.raises(ValueError, match=r"current data has no column\(s\) \['bonus_malus'\].*validate"):
        monitoring.detect_drift(SPEC, reference, current)


def test_empty_batch_is_a_clear_error(reference):
    with pytest.raises(ValueError, match="current frame has no rows"):
        monitoring.detect_drift(SPEC, reference, policies(seed=6).iloc[:0])


def test_column_emptied_in_the_batch_counts_as_drifted(reference):
    """Evidently refuses an all-empty column; a batch whose annual_km vanished has drifted there."""
    current = policies(seed=8, n=500).assign(annual_km=np.nan)
    result, _ = monitoring.detect_drift(SPEC, reference, current)
    assert result.columns == ["annual_km"]
    assert result.scores["annual_km"]["stattest"] == monitoring.ALL_MISSING
    assert set(result.scores) == FEATURES


def test_parse_snapshot_falls_back_to_the_stattest_direction():
    """Without per-column tests, p-values drift below the threshold and distances at or above it."""

    def value_drift(column, method, value):
        config = {
            "type": "evidently:metric_v2:ValueDrift",
            "column": column,
            "method": method,
            "threshold": 0.1,
        }
        return {"id": column, "config": config, "value": value}

    snapshot = {
        "metrics": [
            {
                "config": {"type": "evidently:metric_v2:DriftedColumnsCount"},
                "value": {"count": 2, "share": 0.5},
            },
            value_drift("a", "K-S p_value", 0.01),
            value_drift("b", "K-S p_value", 0.5),
            value_drift("c", "Wasserstein distance (normed)", 0.3),
            value_drift("d", "Jensen-Shannon distance", 0.02),
        ],
        "tests": [],
    }
    scores, counted = monitoring.parse_snapshot(snapshot)
    assert {name: s["drifted"] for name, s in scores.items()} == {
        "a": True,
        "b": False,
        "c": True,
        "d": False,
    }
    assert counted == (2, 0.5)


class ScoreByPriorClaims:
    """A fitted-model stand-in: claim probability 0.9 with prior claims, else 0.1."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = np.where(frame["prior_claims"].to_numpy() > 0, 0.9, 0.1)
        return np.column_stack([1 - p, p])


def labelled(claims: list[int], labels: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"prior_claims": claims, "has_claim": labels})


def test_champion_metric_is_the_primary_metric_on_labelled_rows():
    frame = labelled([0, 0, 1, 1, 2], [0, 1, 1, 1, None])  # the unlabelled row is left out
    assert monitoring.champion_metric(SPEC, ScoreByPriorClaims(), frame) == pytest.approx(0.75)


def test_champion_metric_follows_the_spec_metric():
    frame = labelled([0, 1, 1, 0], [0, 1, 0, 0])
    spec = with_monitoring(primary_metric="brier", floor=0.2)
    expected = np.mean((np.array([0.1, 0.9, 0.9, 0.1]) - np.array([0, 1, 0, 0])) ** 2)
    assert monitoring.champion_metric(spec, ScoreByPriorClaims(), frame) == pytest.approx(expected)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"prior_claims": [0, 1]}),
        labelled([0, 1], [None, None]),
    ],
    ids=["no label column", "no label value"],
)
def test_unlabelled_batch_has_no_metric(frame):
    assert monitoring.champion_metric(SPEC, ScoreByPriorClaims(), frame) is None


def test_undefined_metric_is_no_evidence():
    """roc_auc on a batch with one class is NaN in metrics; monitoring treats it as no value."""
    spec = with_monitoring(primary_metric="roc_auc")
    assert monitoring.champion_metric(spec, ScoreByPriorClaims(), labelled([0, 1], [0, 0])) is None


@pytest.mark.parametrize(
    ("metric", "floor", "value", "below"),
    [
        ("accuracy", 0.85, 0.80, True),
        ("accuracy", 0.85, 0.90, False),
        ("accuracy", 0.85, 0.85, False),
        ("accuracy", 0.85, None, False),
        ("brier", 0.20, 0.25, True),
        ("brier", 0.20, 0.10, False),
        ("brier", 0.20, None, False),
    ],
)
def test_below_floor_honours_the_metric_direction(metric, floor, value, below):
    assert monitoring.below_floor(with_monitoring(primary_metric=metric, floor=floor), value) is below
