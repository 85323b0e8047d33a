"""Corrupt landed files end in quarantine with a one-line reason, through `run_gate`; nothing crashes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from continuum import landing, pipeline
from continuum.storage import Keys
from continuum.validation.reading import UnreadableBatch, read_batch

DOMAIN = "insurance_claim_risk"
VALID_CSV = Path(__file__).resolve().parents[1] / "data" / "insurance_claim_risk_valid.csv"


def _parquet() -> bytes:
    buffer = io.BytesIO()
    pd.read_csv(VALID_CSV).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _latin1_csv() -> bytes:
    frame = pd.read_csv(VALID_CSV, dtype=str, keep_default_na=False)
    frame.loc[3, "region"] = "Société"  # é is byte 0xE9 in latin-1, invalid on its own in UTF-8
    return frame.to_csv(index=False).encode("latin-1")


def _header_only() -> bytes:
    return VALID_CSV.read_bytes().split(b"\n", 1)[0] + b"\n"


# name, landed file name, bytes, what the reason must say
CORRUPT = [
    ("empty", "batch.csv", b"", "empty"),
    ("binary-junk", "batch.csv", np.random.default_rng(7).bytes(4096), "binary data"),
    ("truncated-parquet", "batch.parquet", _parquet()[:-200], "not a readable parquet file"),
    ("latin-1", "batch.csv", _latin1_csv(), "not UTF-8"),
    ("header-only", "batch.csv", _header_only(), "header but no data rows"),
    ("empty-parquet", "batch.parquet", b"", "empty"),
    ("text-as-parquet", "batch.parquet", b"claim_id,driver_age\n1,30\n", "not a readable parquet file"),
]


@pytest.mark.parametrize(("name", "filename", "data", "reason"), CORRUPT, ids=[c[0] for c in CORRUPT])
def test_run_gate_quarantines_a_corrupt_file_with_a_clear_reason(mlflow_store, s3, name, filename, data, reason):
    landing.land_file(DOMAIN, filename, data)
    (batch_id,) = landing.register_landed(DOMAIN)

    outcome = pipeline.run_gate(DOMAIN, batch_id)

    assert outcome["quarantined"] is True and outcome["success"] is False
    assert reason in outcome["reason"] and "\n" not in outcome["reason"]
    keys = Keys(DOMAIN)
    extension = Path(filename).suffix
    assert s3.get_bytes(keys.quarantine(batch_id) + "raw" + extension) == data  # kept as landed
    assert not s3.exists(keys.validated(batch_id))
    assert s3.get_json(keys.quarantine(batch_id) + "report.json")["reason"] == outcome["reason"]


def test_latin1_reason_names_the_byte_and_the_line():
    with pytest.raises(UnreadableBatch) as error:
        read_batch(_latin1_csv(), "csv")
    assert "byte 0xe9" in error.value.reason and "line 5" in error.value.reason
    assert "save it as UTF-8" in error.value.reason


def test_a_utf8_bom_and_crlf_line_ends_still_read():
    text = VALID_CSV.read_bytes().replace(b"\n", b"\r\n")
    frame = read_batch(b"\xef\xbb\xbf" + text, "csv")
    assert list(frame.columns) == list(pd.read_csv(VALID_CSV).columns)
    assert len(frame) == len(pd.read_csv(VALID_CSV))


def test_a_parquet_with_no_rows_is_not_data():
    buffer = io.BytesIO()
    pd.read_csv(VALID_CSV).head(0).to_parquet(buffer, index=False)
    with pytest.raises(UnreadableBatch, match="no data rows"):
        read_batch(buffer.getvalue(), "parquet")
