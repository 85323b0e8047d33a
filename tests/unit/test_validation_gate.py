"""The gate on S3 (moto): validated data or quarantine, nothing lost, reruns idempotent."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pandas as pd
import pytest

from continuum.specs import BUILTIN_DOMAINS_DIR, load_spec
from continuum.storage import Keys
from continuum.validation import gating
from continuum.validation.gating import gate

VALID_CSV = Path(__file__).resolve().parents[1] / "data" / "insurance_claim_risk_valid.csv"


@pytest.fixture(scope="module")
def spec():
    return load_spec(BUILTIN_DOMAINS_DIR / "insurance_claim_risk.yaml")


def land(storage, spec, batch_id: str, data: bytes, extension: str = ".csv") -> str:
    """What the landing step leaves behind: the raw object and its manifest."""
    keys = Keys(spec.name)
    raw_key = keys.raw(batch_id, extension)
    storage.put_bytes(raw_key, data)
    storage.put_json(
        keys.manifest(batch_id),
        {
            "batch_id": batch_id,
            "domain": spec.name,
            "raw_key": raw_key,
            "extension": extension,
            "source_key": f"{keys.landing}{batch_id}{extension}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "landed_at": "2026-01-01T00:00:00+00:00",
        },
    )
    return raw_key


def faulty_csv() -> bytes:
    frame = pd.read_csv(VALID_CSV, dtype=str, keep_default_na=False)
    frame.loc[1, "driver_age"] = "abc"
    frame.loc[2, "vehicle_age"] = "99"
    frame.loc[3, "region"] = "mars"
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    return frame.to_csv(index=False).encode()


def test_valid_batch_becomes_validated_parquet_and_a_report(s3, spec):
    keys = Keys(spec.name)
    raw_key = land(s3, spec, "b1", VALID_CSV.read_bytes())

    outcome = gate(spec, "b1")

    assert outcome == {
        "batch_id": "b1",
        "success": True,
        "quarantined": False,
        "failed": [],
        "warnings": [],
        "report_key": keys.validation_report("b1"),
        "validated_key": keys.validated("b1"),
        "row_count": 40,
        "reason": None,
    }
    validated = s3.get_frame(keys.validated("b1"))
    assert list(validated.columns) == [c.name for c in spec.data.columns]
    assert str(validated["driver_age"].dtype) == "int64" and str(validated["urban"].dtype) == "bool"
    report = s3.get_json(keys.validation_report("b1"))
    assert report["success"] is True and report["outcome"] == outcome
    assert s3.exists(raw_key)  # a good batch keeps its raw file where it landed
    assert s3.list_keys(keys.quarantine("b1")) == []


def test_invalid_batch_is_moved_to_quarantine_with_every_failure(s3, spec):
    keys = Keys(spec.name)
    data = faulty_csv()
    raw_key = land(s3, spec, "b2", data)

    outcome = gate(spec, "b2")

    expected = {
        "expect_column_values_to_match_regex(driver_age)",
        "expect_column_values_to_be_in_set(region)",
        "expect_column_values_to_be_unique(policy_id)",
        "expect_column_values_to_be_between(vehicle_age)",
    }
    assert outcome["success"] is False and outcome["quarantined"] is True
    assert set(outcome["failed"]) == expected
    assert outcome["warnings"] == ["expect_compound_columns_to_be_unique"]  # duplicated rows only warn
    assert outcome["validated_key"] is None
    assert outcome["report_key"] == keys.quarantine("b2") + "report.json"
    assert outcome["row_count"] == 41
    assert "4 expectations failed" in outcome["reason"]

    # moved, not copied, not lost
    assert not s3.exists(raw_key)
    assert s3.list_keys(keys.batch("b2")) == sorted([keys.manifest("b2"), keys.validation_report("b2")])
    assert s3.get_bytes(keys.quarantine("b2") + "raw.csv") == data
    assert not s3.exists(keys.validated("b2"))

    report = s3.get_json(outcome["report_key"])
    assert report["domain"] == spec.name and report["batch_id"] == "b2" and report["when"]
    assert report["row_count"] == 41 and report["reason"] == outcome["reason"]
    samples = {
        f"{f['expectation']}({f['column']})" if f["column"] else f["expectation"]: f for f in report["failed"]
    }
    assert set(samples) == expected
    assert samples["expect_column_values_to_match_regex(driver_age)"]["sample"] == ["abc"]
    assert samples["expect_column_values_to_be_between(vehicle_age)"]["sample"] == [99]
    assert samples["expect_column_values_to_be_in_set(region)"]["sample"] == ["mars"]
    assert s3.get_json(keys.validation_report("b2"))["failed"] == report["failed"]


def test_unreadable_batch_is_quarantined_with_the_reason(s3, spec):
    keys = Keys(spec.name)
    buffer = io.BytesIO()
    pd.read_csv(VALID_CSV).to_parquet(buffer, index=False)
    truncated = buffer.getvalue()[:100]
    land(s3, spec, "b3", truncated, ".parquet")

    outcome = gate(spec, "b3")

    assert outcome["quarantined"] is True and outcome["failed"] == [] and outcome["row_count"] == 0
    assert "parquet" in outcome["reason"]
    assert s3.get_bytes(keys.quarantine("b3") + "raw.parquet") == truncated
    assert s3.get_json(outcome["report_key"])["reason"] == outcome["reason"]


@pytest.mark.parametrize("data", [VALID_CSV.read_bytes(), faulty_csv()], ids=["valid", "invalid"])
def test_second_call_returns_the_stored_outcome_without_redoing_work(s3, spec, data, monkeypatch):
    land(s3, spec, "b4", data)
    first = gate(spec, "b4")
    before = {key: s3.get_bytes(key) for key in s3.list_keys("")}

    def fail(*args, **kwargs):
        raise AssertionError("the batch was validated again")

    monkeypatch.setattr(gating, "validate", fail)
    assert gate(spec, "b4") == first
    assert {key: s3.get_bytes(key) for key in s3.list_keys("")} == before


def test_rerun_after_a_crash_mid_quarantine_finishes_the_job(s3, spec):
    keys = Keys(spec.name)
    data = faulty_csv()
    raw_key = land(s3, spec, "b5", data)
    s3.move(raw_key, keys.quarantine("b5") + "raw.csv")  # moved, but no report written yet

    outcome = gate(spec, "b5")

    assert outcome["quarantined"] is True
    assert s3.get_bytes(keys.quarantine("b5") + "raw.csv") == data
    assert s3.exists(keys.quarantine("b5") + "report.json") and s3.exists(keys.validation_report("b5"))


def test_a_batch_that_was_never_landed_is_a_clear_error(s3, spec):
    with pytest.raises(LookupError, match="no manifest.*land the file first"):
        gate(spec, "never-landed")
