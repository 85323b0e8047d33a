"""Severity and tolerance per contract check, both forms of the target, and the README's example spec,
on real data shipped with installed packages (scikit-learn's iris, statsmodels' Fair affairs survey)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from continuum import simulate
from continuum.specs import DomainSpec, load_spec
from continuum.validation import conform, validate
from continuum.validation.checks import text_view

README = Path(__file__).resolve().parents[2] / "README.md"
DUPLICATES = "expect_compound_columns_to_be_unique"


def _spec(data: dict) -> DomainSpec:
    return DomainSpec.model_validate({"name": "real_data", "description": "t", "owner": "t", "data": data})


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    """150 real flowers, two of them identical (rows 101 and 142), read as the gate reads CSV: text."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    assert frame.duplicated().sum() == 1
    return text_view(frame)


IRIS_COLUMNS = [
    {"name": n, "type": "float", "min": 0, "max": 10}
    for n in ("sepal_length", "sepal_width", "petal_length", "petal_width")
]


def test_a_legitimately_duplicated_row_only_warns(iris):
    spec = _spec({"target": "species", "positive_label": 2, "columns": IRIS_COLUMNS})
    result = validate(spec, iris)
    assert result.success and result.failed == []
    assert [w.name for w in result.warnings] == [DUPLICATES]
    assert result.warnings[0].severity == "warn"
    assert len(conform(spec, iris)) == 150  # the batch goes on, whole


def test_duplicated_rows_quarantine_when_the_spec_says_error(iris):
    spec = _spec(
        {
            "target": "species",
            "positive_label": 2,
            "columns": IRIS_COLUMNS,
            "checks": {"duplicated_rows": {"severity": "error"}},
        }
    )
    result = validate(spec, iris)
    assert not result.success and [f.name for f in result.failed] == [DUPLICATES]


@pytest.fixture(scope="module")
def fair() -> pd.DataFrame:
    """6,366 answers of the 1974 Redbook survey; `has_affair` derived from time spent in affairs."""
    import statsmodels.api as sm

    frame = sm.datasets.fair.load_pandas().data
    frame = frame.assign(has_affair=(frame["affairs"] > 0).astype("int64")).drop(columns=["affairs"])
    return text_view(frame)


def _fair_spec(range_check: dict | None) -> DomainSpec:
    years = {"name": "yrs_married", "type": "float", "min": 0, "max": 20}
    if range_check is not None:
        years["checks"] = {"range": range_check}
    others = [
        {"name": n, "type": "float"}
        for n in ("rate_marriage", "age", "children", "religious", "educ", "occupation", "occupation_husb")
    ]
    return _spec({"target": "has_affair", "columns": [others[0], others[1], years, *others[2:]]})


def test_mostly_tolerates_a_share_of_rows_as_gx_does(fair):
    over = (fair["yrs_married"].astype(float) > 20).mean()
    assert 0 < over < 0.15  # the longest marriages (23 years) exceed the declared maximum

    strict = validate(_fair_spec(None), fair)
    assert "expect_column_values_to_be_between(yrs_married)" in {f.name for f in strict.failed}

    tolerant = validate(_fair_spec({"mostly": 0.85}), fair)
    assert tolerant.success and "expect_column_values_to_be_between(yrs_married)" not in {
        w.name for w in tolerant.warnings
    }

    too_tight = validate(_fair_spec({"mostly": 1 - over / 2}), fair)
    assert "expect_column_values_to_be_between(yrs_married)" in {f.name for f in too_tight.failed}


def test_a_warn_range_is_recorded_and_the_batch_goes_on(fair):
    result = validate(_fair_spec({"severity": "warn"}), fair)
    assert result.success
    assert "expect_column_values_to_be_between(yrs_married)" in {w.name for w in result.warnings}


def test_a_tolerated_type_fault_becomes_a_null_in_the_validated_batch(iris):
    columns = [{**c, "checks": {"type": {"severity": "warn"}}} if c["name"] == "sepal_width" else c for c in IRIS_COLUMNS]
    spec = _spec({"target": "species", "positive_label": 2, "columns": columns})
    broken = iris.copy()
    broken.loc[3, "sepal_width"] = "3,1"
    result = validate(spec, broken)
    assert result.success
    assert "expect_column_values_to_match_regex(sepal_width)" in {w.name for w in result.warnings}
    validated = conform(spec, broken)
    assert validated["sepal_width"].isna().sum() == 1

    strict = _spec({"target": "species", "positive_label": 2, "columns": IRIS_COLUMNS})
    assert not validate(strict, broken).success


# --- both forms of the target -------------------------------------------------------------------


def test_declared_target_is_checked_like_any_column(iris):
    declared = [*IRIS_COLUMNS, {"name": "species", "type": "int", "allowed": [0, 1]}]
    result = validate(_spec({"target": "species", "positive_label": 1, "columns": declared}), iris)
    assert "expect_column_values_to_be_in_set(species)" in {f.name for f in result.failed}  # 2 is not allowed


def test_undeclared_target_must_be_present_in_labelled_batches_only(iris):
    spec = _spec({"target": "species", "positive_label": 2, "columns": IRIS_COLUMNS})
    assert spec.data.column("species").type == "int"
    unlabelled = iris.drop(columns=["species"])
    assert validate(spec, unlabelled).success
    assert "species" not in conform(spec, unlabelled).columns
    mislabelled = iris.assign(species=iris["species"].where(iris.index != 7, "setosa"))
    assert "expect_column_values_to_match_regex(species)" in {f.name for f in validate(spec, mislabelled).failed}


# --- the README's example, exactly as written ---------------------------------------------------


def readme_example() -> str:
    section = README.read_text().split("## Add a domain", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_readme_example_spec_loads_and_gates_a_batch(tmp_path, s3):
    from continuum.storage import Keys
    from continuum.validation.gating import gate

    text = readme_example()
    assert "target: has_claim" in text and "name: has_claim" not in text  # the undeclared form
    path = tmp_path / "insurance_claim_risk.yaml"
    path.write_text(text)
    spec = load_spec(path)
    names = [c.name for c in spec.data.columns]
    batch = simulate.generate("insurance_claim_risk", 300, seed=3)[names]
    data = batch.to_csv(index=False).encode()

    keys = Keys(spec.name)
    raw_key = keys.raw("readme", ".csv")
    s3.put_bytes(raw_key, data)
    s3.put_json(keys.manifest("readme"), {"batch_id": "readme", "raw_key": raw_key, "extension": ".csv"})
    outcome = gate(spec, "readme")
    assert outcome["success"], outcome
    assert s3.get_frame(keys.validated("readme"))["has_claim"].isin([0, 1]).all()
    assert yaml.safe_load(text)["name"] == spec.name
