"""The `loop` benchmark's code path at a tiny size, in fresh workers as `make bench` runs it.

It sets up Airflow's home, moto S3 and MLflow of its own, so it cannot run inside this
pytest process (whose Airflow is configured by conftest). No timing is asserted: what is
checked is that both sides decided a first batch through the same steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is a top-level package next to include/, not installed
    sys.path.insert(0, str(REPO))

from benchmarks import Sizes  # noqa: E402
from benchmarks import run as bench  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_the_loop_runs_through_the_dags_and_the_script_with_the_same_decision(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTINUUM_BENCH_DATA", str(tmp_path))
    [comparison] = bench.comparisons(["loop"], Sizes.tiny(2000))
    subject, reference = bench.run_side(comparison.subject), bench.run_side(comparison.reference)
    assert "error" not in subject and "error" not in reference, (subject, reference)
    for result in (subject, reference):
        assert result["facts"]["finished"] is True and result["facts"]["promoted"] is True
        assert result["facts"]["steps"] == "gate,monitor,train,promote,score"
        assert len(result["times"]) == bench.REPEATS
    assert subject["facts"]["champion"] == reference["facts"]["champion"] == "1"
    text = bench.report([(comparison, subject, reference)], bench.machine(), Sizes.tiny(2000), 1.0)
    assert "Not measured" not in text and "## loop: real DAGs (dag.test) vs plain script" in text
