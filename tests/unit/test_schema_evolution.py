"""A column added to a live domain's contract: the champion keeps its columns, drift compares the shared
ones, older batches join the next training window with the new column empty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from continuum import metrics, monitoring, scoring, training
from continuum.specs import DomainSpec
from continuum.validation import align_to_contract, concat_batches

COLUMNS = [
    {"name": "id", "type": "string"},
    {"name": "age", "type": "int", "min": 0},
    {"name": "plan", "type": "category", "allowed": ["a", "b"]},
    {"name": "label", "type": "int", "allowed": [0, 1]},
]
ADDED = [{"name": "visits", "type": "int", "min": 0}, {"name": "site", "type": "category"}]


def _spec(columns: list[dict]) -> DomainSpec:
    return DomainSpec.model_validate(
        {
            "name": "evolving",
            "description": "t",
            "owner": "t",
            "data": {"target": "label", "id_column": "id", "columns": columns},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )


BEFORE, AFTER = _spec(COLUMNS), _spec([*COLUMNS, *ADDED])


def _frame(n: int, seed: int, added: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    frame = pd.DataFrame(
        {
            "id": [f"p{seed}-{i}" for i in range(n)],
            "age": age,
            "plan": pd.Categorical(rng.choice(["a", "b"], n), categories=["a", "b"]),
            "label": (age + rng.normal(0, 10, n) > 50).astype("int64"),
        }
    )
    if added:
        frame = frame.assign(visits=rng.poisson(2, n), site=pd.Categorical(rng.choice(["x", "y"], n)))
    return frame


@pytest.fixture(scope="module")
def champion():
    """A pipeline trained before the contract gained `visits` and `site`."""
    return training.fit(BEFORE, _frame(300, seed=1, added=False))


def test_the_champion_is_fed_exactly_its_training_columns(champion):
    batch = _frame(50, seed=2, added=True)
    assert list(training.model_inputs(AFTER, champion, batch).columns) == ["age", "plan"]
    # The new columns change nothing: the same rows score the same without them.
    with_new = scoring.score(AFTER, champion, batch)["probability"]
    without = scoring.score(BEFORE, champion, batch.drop(columns=["visits", "site"]))["probability"]
    np.testing.assert_array_equal(with_new.to_numpy(), without.to_numpy())
    assert metrics.evaluate(AFTER, champion, batch) == metrics.evaluate(BEFORE, champion, batch)


def test_the_champion_smoke_tests_on_its_reference_written_before_the_column_existed(champion):
    reference = _frame(20, seed=3, added=False)  # models/<domain>/<version>/reference.parquet
    scoring.smoke_test(AFTER, champion, reference)


def test_a_column_the_champion_needs_and_the_data_lost_is_an_error_that_says_what_to_do(champion):
    batch = _frame(20, seed=4, added=True).drop(columns=["plan"])
    with pytest.raises(ValueError, match=r"trained on column\(s\) \['plan'\].*continuum domains --champions"):
        training.model_inputs(AFTER, champion, batch)


def test_a_model_that_records_no_columns_gets_the_contract_features_the_frame_has():
    class Rules:
        classes_ = np.array([0, 1])

    batch = _frame(5, seed=5, added=False)
    assert training.trained_columns(Rules()) is None
    assert list(training.model_inputs(AFTER, Rules(), batch).columns) == ["age", "plan"]


def test_drift_compares_the_columns_both_sides_have_and_names_the_rest():
    reference = _frame(400, seed=6, added=False)
    result, _ = monitoring.detect_drift(AFTER, reference, _frame(400, seed=7, added=True))
    assert result.not_compared == ["visits", "site"]
    assert set(result.scores) == {"age", "plan"} and result.detected is False
    # The current batch must still have every declared column: that is the gate's promise.
    with pytest.raises(ValueError, match=r"current data has no column\(s\) \['age'\]"):
        monitoring.detect_drift(AFTER, reference, _frame(50, seed=8, added=True).drop(columns=["age"]))


def test_older_batches_join_the_window_with_the_new_columns_empty_in_their_types():
    older = align_to_contract(AFTER, _frame(100, seed=9, added=False))
    assert list(older.columns) == ["id", "age", "plan", "label", "visits", "site"]
    assert str(older["visits"].dtype) == "Int64" and older["visits"].isna().all()
    assert str(older["site"].dtype) == "category" and older["site"].isna().all()
    window = concat_batches(AFTER, [_frame(100, seed=9, added=False), _frame(100, seed=10, added=True)])
    assert str(window["visits"].dtype) == "Int64"  # an int column stays int (its signature says long)
    challenger = training.fit(AFTER, window)
    assert list(challenger.feature_names_in_) == ["age", "plan", "visits", "site"]
    assert scoring.score(AFTER, challenger, _frame(10, seed=11, added=True))["probability"].notna().all()


def test_a_batch_under_the_current_contract_is_aligned_unchanged_and_dropped_columns_go():
    current = _frame(10, seed=12, added=True)
    pd.testing.assert_frame_equal(align_to_contract(AFTER, current)[list(current.columns)], current)
    assert "visits" not in align_to_contract(BEFORE, current).columns
    unlabelled = align_to_contract(AFTER, _frame(5, seed=13, added=False).drop(columns=["label"]))
    assert "label" not in unlabelled.columns


def test_a_column_retired_with_feature_false_is_still_read_by_the_champion_not_by_the_next_model(champion):
    retiring = _spec([{**c, "feature": False} if c["name"] == "plan" else c for c in COLUMNS])
    batch = _frame(50, seed=14, added=False)
    assert list(training.model_inputs(retiring, champion, batch).columns) == ["age", "plan"]
    assert list(training.fit(retiring, batch).feature_names_in_) == ["age"]
