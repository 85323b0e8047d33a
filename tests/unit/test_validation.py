"""The validation gate without S3: reading, the suite, each fault named with its values, conform."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from continuum.specs import BUILTIN_DOMAINS_DIR, load_spec
from continuum.validation import (
    SuiteError,
    UnreadableBatch,
    build_suite,
    conform,
    read_batch,
    validate,
)

VALID_CSV = Path(__file__).resolve().parents[1] / "data" / "insurance_claim_risk_valid.csv"


@pytest.fixture(scope="module")
def spec():
    return load_spec(BUILTIN_DOMAINS_DIR / "insurance_claim_risk.yaml")


@pytest.fixture
def frame() -> pd.DataFrame:
    """40 valid policies read the way the gate reads them (every value as text)."""
    return read_batch(VALID_CSV.read_bytes(), "csv")


def with_extra_expectations(spec, expectations):
    data = spec.data.model_copy(update={"expectations": expectations})
    return spec.model_copy(update={"data": data})


def names(result) -> set[str]:
    return {f.name for f in result.failed}


def failure(result, name):
    return next(f for f in result.failed if f.name == name)


# --- reading -----------------------------------------------------------------------------------


def test_csv_is_read_as_text_with_nulls(frame):
    assert frame.shape == (40, 12)
    assert frame["driver_age"].map(type).eq(str).all()
    assert frame["annual_km"].isna().any()  # the nullable column has gaps in the fixture


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        (b"", "csv", "empty"),
        (b"  \n\n", "csv", "empty"),
        (b"policy_id,driver_age\n", "csv", "no data rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "csv", "binary"),
        (b"a,b\n\xff\xfe,1\n", "csv", "not UTF-8 text (byte 0xff on line 2)"),
        (b"\xff\xfea,b\n1,2\n", "csv", "UTF-8"),
        (b"a,b,c\n1,2,3\n4,5\n", "csv", "Expected 3 columns"),
        (b"a,b\n1,2,3\n", "csv", "Expected 2 columns"),
        (b"a,a\n1,2\n", "csv", "duplicated column names"),
        (b"a,b\n1,2\n", "parquet", "parquet"),
        (b"a,b\n1,2\n", "xlsx", "unsupported format"),
    ],
)
def test_unreadable_inputs_say_why(data, fmt, reason):
    with pytest.raises(UnreadableBatch) as caught:
        read_batch(data, fmt)
    assert reason in caught.value.reason
    assert "\n" not in caught.value.reason


def test_truncated_parquet_is_unreadable(frame):
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    whole = buffer.getvalue()
    assert len(read_batch(whole, ".parquet")) == 40
    with pytest.raises(UnreadableBatch, match="parquet"):
        read_batch(whole[: len(whole) // 2], "parquet")


def test_empty_parquet_is_unreadable(frame):
    buffer = io.BytesIO()
    frame.head(0).to_parquet(buffer, index=False)
    with pytest.raises(UnreadableBatch, match="no data rows"):
        read_batch(buffer.getvalue(), "parquet")


# --- the suite -----------------------------------------------------------------------------------


def test_suite_covers_the_contract(spec):
    suite = build_suite(spec)
    assert suite.name == "insurance_claim_risk_contract"
    kinds = [(e.expectation_type, getattr(e, "column", None)) for e in suite.expectations]
    assert ("expect_table_columns_to_match_set", None) in kinds
    assert ("expect_column_to_exist", "has_claim") in kinds
    assert ("expect_column_values_to_be_between", "driver_age") in kinds
    assert ("expect_column_values_to_be_in_set", "region") in kinds
    assert ("expect_column_values_to_be_unique", "policy_id") in kinds
    assert ("expect_compound_columns_to_be_unique", None) in kinds
    assert ("expect_column_values_to_not_be_null", "annual_km") not in kinds  # declared nullable
    assert ("expect_column_values_to_not_be_null", "bonus_malus") in kinds
    assert all(e.meta["view"] in ("text", "typed") for e in suite.expectations)


def test_unknown_extra_expectation_is_a_spec_error_naming_it(spec):
    bad = with_extra_expectations(
        spec, [{"type": "expect_column_to_be_lovely", "kwargs": {"column": "region"}}]
    )
    with pytest.raises(
        SuiteError, match=r"data.expectations\[0\].*unknown expectation 'expect_column_to_be_lovely'"
    ):
        build_suite(bad)


def test_extra_expectation_with_bad_kwargs_is_a_spec_error(spec):
    bad = with_extra_expectations(
        spec, [{"type": "expect_column_mean_to_be_between", "kwargs": {"colum": "driver_age"}}]
    )
    with pytest.raises(SuiteError, match="expect_column_mean_to_be_between"):
        build_suite(bad)


# --- validate ------------------------------------------------------------------------------------


def test_valid_batch_passes(spec, frame):
    result = validate(spec, frame)
    assert result.success, [f.describe() for f in result.failed]
    assert result.failed == [] and result.skipped == []
    assert result.row_count == 40
    assert result.evaluated == len(build_suite(spec).expectations)


def test_valid_parquet_batch_with_native_types_passes(spec, frame):
    buffer = io.BytesIO()
    conform(spec, frame).to_parquet(buffer, index=False)
    result = validate(spec, read_batch(buffer.getvalue(), "parquet"))
    assert result.success, [f.describe() for f in result.failed]


def _set(frame, row, column, value):
    frame.loc[row, column] = value
    return frame


FAULTS = {
    "out_of_range": (
        lambda f: _set(f, 2, "driver_age", "150"),
        {"expect_column_values_to_be_between(driver_age)": [150]},
    ),
    "unseen_category": (
        lambda f: _set(f, 3, "region", "mars"),
        {"expect_column_values_to_be_in_set(region)": ["mars"]},
    ),
    "label_outside_allowed": (
        lambda f: _set(f, 5, "has_claim", "2"),
        {"expect_column_values_to_be_in_set(has_claim)": [2]},
    ),
    "null_in_non_nullable": (
        lambda f: _set(f, 4, "bonus_malus", None),
        {"expect_column_values_to_not_be_null(bonus_malus)": [None]},
    ),
    "wrong_type_int": (
        lambda f: _set(f, 1, "driver_age", "abc"),
        {"expect_column_values_to_match_regex(driver_age)": ["abc"]},
    ),
    "wrong_type_float": (
        lambda f: _set(f, 1, "bonus_malus", "1,5"),
        {"expect_column_values_to_match_regex(bonus_malus)": ["1,5"]},
    ),
    "wrong_type_bool": (
        lambda f: _set(f, 1, "urban", "maybe"),
        {"expect_column_values_to_match_regex(urban)": ["maybe"]},
    ),
    "duplicated_ids": (
        lambda f: _set(f, 1, "policy_id", f.loc[0, "policy_id"]),
        {"expect_column_values_to_be_unique(policy_id)": ["P0000000"]},
    ),
    "duplicated_rows": (
        lambda f: pd.concat([f, f.iloc[[0, 7]]], ignore_index=True),
        {"expect_column_values_to_be_unique(policy_id)": ["P0000000", "P0000007"]},
    ),
    "missing_column": (
        lambda f: f.drop(columns=["vehicle_power"]),
        {"expect_table_columns_to_match_set": [], "expect_column_to_exist(vehicle_power)": []},
    ),
    "renamed_column": (
        lambda f: f.rename(columns={"driver_age": "age_of_driver"}),
        {"expect_table_columns_to_match_set": ["age_of_driver"], "expect_column_to_exist(driver_age)": []},
    ),
    "target_out_of_set": (
        lambda f: f.assign(has_claim=f["has_claim"].astype(str).str.replace("1", "7")),
        {"expect_column_values_to_be_in_set(has_claim)": [7]},
    ),
}


def test_an_unlabelled_batch_is_valid_and_conforms_without_the_target(spec, frame):
    unlabelled = frame.drop(columns=["has_claim"])
    result = validate(spec, unlabelled)
    assert result.success, result.failed
    assert result.suite.endswith("_unlabelled")
    assert "has_claim" not in conform(spec, unlabelled).columns


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_caught_and_named_with_samples(spec, frame, fault):
    inject, expected = FAULTS[fault]
    result = validate(spec, inject(frame))
    assert not result.success
    assert names(result) == set(expected)  # this fault, and nothing else
    for name, sample in expected.items():
        if sample is not None:
            assert failure(result, name).sample == sample
    assert result.model_dump_json()  # the report is JSON-safe


def test_renamed_column_reports_what_is_missing_and_what_is_new(spec, frame):
    result = validate(spec, frame.rename(columns={"driver_age": "age_of_driver"}))
    details = failure(result, "expect_table_columns_to_match_set").details
    assert details == {"unexpected": ["age_of_driver"], "missing": ["driver_age"]}
    assert "expect_column_values_to_be_between(driver_age)" in result.skipped


def test_failures_carry_counts_rows_and_a_readable_line(spec, frame):
    frame.loc[[3, 9], "region"] = "mars"
    frame.loc[6, "region"] = "atlantis"
    found = failure(validate(spec, frame), "expect_column_values_to_be_in_set(region)")
    assert found.unexpected_count == 3
    assert found.unexpected_percent == pytest.approx(7.5)
    assert found.sample == ["mars", "atlantis"]
    assert found.rows == [3, 6, 9]
    assert found.kwargs["value_set"] == ["north", "south", "east", "west"]
    assert "3 values" in found.describe() and "mars" in found.describe()


def test_duplicated_rows_are_caught_even_when_a_column_is_missing(spec, frame):
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True).drop(columns=["urban"])
    result = validate(spec, frame)
    assert "expect_compound_columns_to_be_unique" in {w.name for w in result.warnings}


def test_extra_spec_expectation_runs_on_typed_values(spec, frame):
    passing = {
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "driver_age", "min_value": 18},
    }
    failing = {
        "type": "expect_column_max_to_be_between",
        "kwargs": {"column": "vehicle_age", "max_value": 5},
    }
    result = validate(with_extra_expectations(spec, [passing, failing]), frame)
    assert result.evaluated == len(build_suite(spec).expectations) + 2
    assert names(result) == {"expect_column_max_to_be_between(vehicle_age)"}


def test_an_extra_expectation_that_cannot_be_evaluated_says_why(spec, frame):
    nonsense = {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "region", "min_value": 1}}
    result = validate(with_extra_expectations(spec, [nonsense]), frame)
    found = failure(result, "expect_column_mean_to_be_between(region)")
    assert found.error and "could not be evaluated" in found.describe()


# --- conform -------------------------------------------------------------------------------------


def test_conform_gives_the_declared_types_in_spec_order(spec, frame):
    shuffled = frame[list(reversed(frame.columns))]
    shuffled.loc[0, "urban"] = "Yes"
    conformed = conform(spec, shuffled)
    assert list(conformed.columns) == [c.name for c in spec.data.columns]
    dtypes = conformed.dtypes.astype(str).to_dict()
    assert dtypes["driver_age"] == "int64"
    assert dtypes["has_claim"] == "int64"
    assert dtypes["annual_km"] == "float64"
    assert dtypes["urban"] == "bool"
    assert dtypes["region"] == "category"
    assert list(conformed["region"].cat.categories) == ["north", "south", "east", "west"]
    assert frame.loc[0, "urban"] == "false" and bool(conformed.loc[0, "urban"]) is True  # "Yes" is true
    assert conformed["annual_km"].isna().sum() == frame["annual_km"].isna().sum()
    assert conformed["policy_id"].tolist() == frame["policy_id"].tolist()
    assert shuffled.loc[0, "urban"] == "Yes"  # the input is not changed


def test_conform_parses_bools_and_datetimes(spec):
    from continuum.specs import Column

    columns = [
        Column(name="when", type="datetime"),
        Column(name="flag", type="bool"),
        Column(name="n", type="int", nullable=True),
    ]
    data = spec.data.model_copy(update={"columns": columns, "target": "flag", "id_column": None})
    custom = spec.model_copy(update={"data": data})
    raw = pd.DataFrame(
        {"when": ["2024-01-02", "2024-01-02T03:04:05Z"], "flag": ["no", "TRUE"], "n": ["3", None]},
        dtype=object,
    )
    assert validate(custom, raw).success
    conformed = conform(custom, raw)
    assert str(conformed["when"].dtype) == "datetime64[ns, UTC]"
    assert conformed["when"][1] == pd.Timestamp("2024-01-02T03:04:05Z")
    assert conformed["flag"].tolist() == [False, True]
    assert str(conformed["n"].dtype) == "Int64" and conformed["n"].isna().tolist() == [False, True]


def test_conform_refuses_a_frame_that_did_not_pass(spec, frame):
    frame.loc[0, "driver_age"] = "abc"
    with pytest.raises(ValueError, match="driver_age"):
        conform(spec, frame)
