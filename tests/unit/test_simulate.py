"""The simulator: deterministic, true to the contract, and each fault does what it says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from continuum import metrics, simulate, training
from continuum.simulate import faults
from continuum.specs import get_domain

DOMAIN = "insurance_claim_risk"


@pytest.fixture(scope="module")
def spec():
    return get_domain(DOMAIN)


@pytest.fixture(scope="module")
def stable():
    return simulate.generate(DOMAIN, 4000, seed=11)


def test_same_seed_same_frame_other_seed_other_frame():
    a = simulate.generate(DOMAIN, 500, seed=3, faults=["nulls", "duplicated_rows"])
    pd.testing.assert_frame_equal(
        a, simulate.generate(DOMAIN, 500, seed=3, faults=["nulls", "duplicated_rows"])
    )
    assert not a.equals(simulate.generate(DOMAIN, 500, seed=4, faults=["nulls", "duplicated_rows"]))


def test_stable_data_honours_the_contract(spec, stable):
    assert list(stable.columns) == [c.name for c in spec.data.columns]
    assert stable["policy_id"].is_unique
    assert stable["policy_id"].str.fullmatch(r"P-\d{8}").all()
    for column in spec.data.columns:
        values = stable[column.name]
        if not column.nullable:
            assert values.notna().all(), column.name
        if column.min is not None:
            assert values.min() >= column.min and values.max() <= column.max, column.name
        if column.allowed is not None:
            assert set(values.unique()) <= set(column.allowed), column.name
    assert stable["annual_km"].isna().any()  # the one nullable column does have gaps
    assert stable["urban"].dtype == bool
    assert pd.api.types.is_integer_dtype(stable["driver_age"])
    assert 0.08 <= stable["has_claim"].mean() <= 0.12


def test_risk_follows_the_story(stable):
    rate = stable.groupby(stable["driver_age"] < 25)["has_claim"].mean()
    assert rate[True] > 2 * rate[False]
    assert stable.loc[stable["prior_claims"] > 0, "has_claim"].mean() > stable["has_claim"].mean()


def _with(fault: str) -> pd.DataFrame:
    return simulate.generate(DOMAIN, 1000, seed=5, faults=[fault])


def test_unseen_category():
    frame = _with("unseen_category")
    assert (frame["region"] == faults.UNSEEN_VALUE).sum() == 50


def test_nulls_land_in_non_nullable_columns():
    frame = _with("nulls")
    assert frame["driver_age"].isna().sum() == 50 and frame["vehicle_age"].isna().sum() == 50
    assert frame["policy_id"].notna().all()


def test_out_of_range():
    assert (_with("out_of_range")["driver_age"] > 100).sum() == 50


def test_missing_column():
    frame = _with("missing_column")
    assert "driver_age" not in frame.columns and len(frame.columns) == 11


def test_renamed_column():
    frame = _with("renamed_column")
    assert "driver_age" not in frame.columns and "driverAge" in frame.columns


def test_duplicated_rows():
    frame = _with("duplicated_rows")
    assert (
        len(frame) == 1050 and frame.duplicated().sum() == 50 and frame["policy_id"].duplicated().sum() == 50
    )


def test_wrong_types_make_an_object_column_with_text():
    frame = _with("wrong_types")
    assert frame["driver_age"].dtype == object
    assert (frame["driver_age"] == faults.WRONG_TYPE_VALUE).sum() == 50


def test_unlabelled():
    assert "has_claim" not in _with("unlabelled").columns


def test_covariate_drift_shifts_feature_means(stable):
    drifted = simulate.generate(DOMAIN, 4000, seed=11, faults=["covariate_drift"])
    assert drifted["driver_age"].mean() > stable["driver_age"].mean() + 6
    assert drifted["annual_km"].mean() > 1.25 * stable["annual_km"].mean()
    assert drifted["vehicle_age"].mean() < stable["vehicle_age"].mean() - 2
    assert (drifted["vehicle_type"] == "hatchback").mean() > (stable["vehicle_type"] == "hatchback").mean() + 0.1
    assert drifted["urban"].mean() < stable["urban"].mean() - 0.15
    assert (drifted["region"] == "south").mean() > (stable["region"] == "south").mean() + 0.2
    half = simulate.generate(DOMAIN, 4000, seed=11, drift=0.5)
    assert drifted["driver_age"].mean() > half["driver_age"].mean() > stable["driver_age"].mean()


def test_concept_drift_breaks_a_stable_champion_but_not_the_features(spec, stable):
    small = spec.model_copy(update={"model": spec.model.model_copy(update={"params": {"max_iter": 40}})})
    champion = training.fit(small, simulate.generate(DOMAIN, 6000, seed=1))
    fresh = simulate.generate(DOMAIN, 4000, seed=12)
    changed = simulate.generate(DOMAIN, 4000, seed=12, faults=["concept_drift"])
    partly = simulate.generate(DOMAIN, 4000, seed=12, faults=["concept_drift"], drift=0.5)
    for column in ("driver_age", "vehicle_power", "bonus_malus", "annual_km"):
        assert changed[column].mean() == pytest.approx(fresh[column].mean(), rel=0.01)
        assert partly[column].mean() == pytest.approx(fresh[column].mean(), rel=0.01)
    assert fresh["has_claim"].mean() < partly["has_claim"].mean() < changed["has_claim"].mean()
    assert metrics.evaluate(small, champion, fresh)["accuracy"] >= 0.85
    assert metrics.evaluate(small, champion, changed)["accuracy"] < 0.85


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_round_trips(tmp_path, suffix):
    frame = simulate.generate(DOMAIN, 200, seed=2, faults=["wrong_types", "nulls"])
    path = simulate.write(frame, tmp_path / "sub" / f"batch{suffix}")
    back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert list(back.columns) == list(frame.columns) and len(back) == 200
    assert back["driver_age"].dtype == object  # the text survives the file format


def test_write_refuses_other_formats(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        simulate.write(simulate.generate(DOMAIN, 10, seed=0), tmp_path / "batch.xlsx")


def test_unknown_fault_and_domain_say_what_exists():
    with pytest.raises(ValueError, match="unknown fault.*covariate_drift"):
        simulate.generate(DOMAIN, 10, seed=0, faults=["gremlins"])
    with pytest.raises(ValueError, match="no simulator for domain 'nope'.*insurance_claim_risk"):
        simulate.generate("nope", 10, seed=0)


def test_faults_do_not_touch_their_input(spec):
    frame = simulate.generate(DOMAIN, 100, seed=0)
    before = frame.copy()
    for name, inject in faults.INJECTORS.items():
        inject(frame, spec, np.random.default_rng(0))
        pd.testing.assert_frame_equal(frame, before, obj=name)
