"""Drift verdicts on every row: the same tests as Evidently's defaults, from a profile made once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from continuum import drift_stats, monitoring
from continuum.specs import DomainSpec

NUMERIC = ["income", "age", "claims"]  # continuous, continuous, few values (0-3)
CATEGORIES = ["region", "fuel"]


@pytest.mark.parametrize(("n", "m"), [(1, 1), (3, 6), (6, 3), (7, 13), (1000, 1001), (2500, 40_000)])
def test_the_wasserstein_distance_is_scipys(n, m):
    rng = np.random.default_rng(n * m)
    u = np.sort(rng.normal(size=n))
    v = np.sort(np.round(rng.normal(0.3, 1.4, size=m), 1))  # ties too
    assert drift_stats.wasserstein_sorted(u, v) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-12, abs=1e-12)


def _frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(10 + shift, 0.5, rows),
            "age": rng.normal(45 + 10 * shift, 12, rows).round(),
            "claims": rng.choice([0, 1, 2, 3], rows, p=_mix([0.7, 0.2, 0.07, 0.03], shift)),
            "region": rng.choice(np.array(["north", "south", "east", "west"], dtype=object), rows, p=_mix([0.4, 0.3, 0.2, 0.1], shift)),
            "fuel": rng.choice(np.array(["petrol", "diesel", "electric"], dtype=object), rows, p=_mix([0.6, 0.3, 0.1], shift)),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "income"] = np.nan  # missing values are dropped, as Evidently does
    frame.loc[rng.random(rows) < 0.01, "age"] = np.inf  # and infinite ones
    return frame


def _mix(p: list[float], shift: float) -> list[float]:
    moved = np.array(p) * (1 - shift) + np.array(p[::-1]) * shift
    return list(moved / moved.sum())


SPEC = DomainSpec.model_validate(
    {
        "name": "drift_grid",
        "description": "drift grid",
        "owner": "test",
        "data": {
            "target": "label",
            "columns": [{"name": n, "type": "float"} for n in NUMERIC]
            + [{"name": n, "type": "category"} for n in CATEGORIES]
            + [{"name": "label", "type": "int"}],
        },
    }
)


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.1, 0.5])
def test_every_verdict_and_score_is_evidentlys_unsampled(shift):
    """None, small, medium and large shifts; continuous, few-valued and categorical columns."""
    reference, current = _frame(4000, 1, 0.0), _frame(6000, 2, shift)
    profile = drift_stats.profile(reference, NUMERIC, CATEGORIES)
    ours = {name: drift_stats.column_drift(profile[name], current[name]) for name in [*NUMERIC, *CATEGORIES]}
    ref = monitoring._prepare(reference, NUMERIC, CATEGORIES, "reference", len(reference), 0)
    cur = monitoring._prepare(current, NUMERIC, CATEGORIES, "current", len(current), 0)
    snapshot = monitoring._run_evidently(ref, cur, NUMERIC, CATEGORIES, 0.5)
    evidently, _ = monitoring.parse_snapshot(snapshot.dict())
    for name in ours:
        assert ours[name]["stattest"] == evidently[name]["stattest"], name
        assert ours[name]["score"] == pytest.approx(evidently[name]["score"], rel=1e-9, abs=1e-12), name
        assert ours[name]["drifted"] == evidently[name]["drifted"], name
    assert ours["claims"]["stattest"] == drift_stats.JENSEN_SHANNON  # four values: compared as categories
    if shift >= 0.5:
        assert all(score["drifted"] for score in ours.values())
    if shift == 0.0:
        assert not any(score["drifted"] for score in ours.values())


def test_a_small_reference_is_left_to_evidentlys_p_value_tests():
    reference, current = _frame(800, 1, 0.0), _frame(5000, 2, 0.1)
    profile = drift_stats.profile(reference, NUMERIC, CATEGORIES)
    assert all(drift_stats.needs_evidently(column) for column in profile.values())
    result, _ = monitoring.detect_drift(SPEC, reference, current, report=False)
    assert {score["stattest"] for score in result.scores.values()} <= {"K-S p_value", "chi-square p_value", "Z-test p_value"}


def test_the_profile_round_trips_without_pickle_and_a_foreign_format_is_refused():
    reference = _frame(3000, 1, 0.0)
    profile = drift_stats.profile(reference, NUMERIC, CATEGORIES)
    back = drift_stats.from_bytes(drift_stats.to_bytes(profile))
    assert set(back) == set(profile)
    assert np.array_equal(back["income"].sorted_values, profile["income"].sorted_values)
    assert back["region"].counts == profile["region"].counts and back["age"].std == profile["age"].std
    import io
    import json

    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps({"format": 99, "columns": {}})))
    with pytest.raises(ValueError, match="format 99"):
        drift_stats.from_bytes(buffer.getvalue())


def test_one_value_reads_the_same_whatever_its_type():
    ints = pd.Series([1, 2, 2, None], dtype="Int64").astype("category")
    floats = pd.Series([1.0, 2.0, 2.0])
    assert drift_stats._value_counts(ints) == drift_stats._value_counts(floats) == {"1.0": 1, "2.0": 2}
    assert drift_stats._value_counts(pd.Series([True, False, True])) == {"True": 2, "False": 1}
