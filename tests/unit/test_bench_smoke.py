"""Every benchmark's code path at a tiny size: `make bench` must not be the first to find it broken.

No timing is asserted (speed goals live in benchmarks/RESULTS.md as ratios); what is
checked is that each side runs, and that Continuum and its reference did the same work.
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

TINY = Sizes.tiny(2000)
AGREEING_FACTS = {  # facts both sides of a comparison must report identically
    "validate: GX suite vs pandas checks": ["success"],
    "read: read_batch vs pandas.read_csv": ["rows"],
    "drift: detect_drift every row vs Evidently unsampled": ["verdicts"],
    "landing: register vs put_object": ["bytes"],
    "fit: pipeline vs bare estimator": ["iterations"],
    "score: scoring.score vs predict_proba": ["rows", "mean_probability"],
    "redaction: redact_conversation vs JSON round trip": ["messages"],
    "redaction: Continuum patterns vs Presidio recognisers": ["messages"],
    "parse: continuum_domains.py vs minimal DAG file": ["import_errors"],
    "parse: 2 vs 1 generated domains": ["import_errors"],
    "loop: real DAGs (dag.test) vs plain script": ["finished", "promoted", "steps", "champion"],
    **{f"memory: {step} task process vs import-and-read process": ["batch_id"] for step in ("gate", "monitor", "train", "score")},
    "rescoring (10k): offline scorers vs JSON-lines parse": ["conversations", "core"],
    "rescoring (100k): offline scorers vs JSON-lines parse": ["conversations", "core"],
}
EXPECTED_FACTS = {  # a memory step measured on a batch it did not work on would measure nothing
    "memory: gate task process vs import-and-read process": {"quarantined": False},
    "memory: monitor task process vs import-and-read process": {"retrain": True},
    "memory: train task process vs import-and-read process": {"trained": True},
}
# Cases that point Airflow at a home of their own, so they run only in a fresh worker
# (`run_side`); tests/integration/test_bench_loop_smoke.py runs them that way.
WORKER_ONLY = {"loop"}


@pytest.fixture
def bench_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTINUUM_BENCH_DATA", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("case", [c for c in bench.CASES if c not in WORKER_ONLY | bench.SEPARATE])
def test_every_comparison_runs_and_both_sides_agree(case, bench_data):
    comparisons = bench.comparisons([case], TINY)
    assert comparisons
    results = []
    with bench.case_environment(case, TINY):  # in order: a memory step needs the steps before it
        for comparison in comparisons:
            subject, reference = bench.measure(comparison.subject), bench.measure(comparison.reference)
            for side, result in ((comparison.subject, subject), (comparison.reference, reference)):
                assert result["seconds"] > 0
                assert len(result["times"]) == side.repeats
                assert result["peak_mb"] is not None
            for key in AGREEING_FACTS[comparison.name]:
                assert subject["facts"][key] == reference["facts"][key], (comparison.name, key)
            for key, value in EXPECTED_FACTS.get(comparison.name, {}).items():
                assert subject["facts"][key] == value, (comparison.name, key, subject["facts"])
            subject["rows"] = reference["rows"] = comparison.rows
            subject["worker_s"] = reference["worker_s"] = 0.0
            results.append((comparison, subject, reference))
    text = bench.report(results, bench.machine(), TINY, 1.0)
    assert "Not measured" not in text and "no interpretation" not in text, text
    for comparison in comparisons:
        assert f"## {comparison.name}" in text


def test_validation_reference_finds_contract_breaks(bench_data):
    """The pandas reference is a real check, not a stand-in that always passes."""
    from benchmarks.bench_validation import check_contract

    from continuum.simulate import generate
    from continuum.specs import get_domain
    from continuum.validation import read_batch, validate

    spec = get_domain("insurance_claim_risk")
    frame = generate("insurance_claim_risk", n=300, seed=3)
    frame.loc[5, "driver_age"] = 150
    frame.loc[7, "region"] = "mars"
    text = read_batch(frame.to_csv(index=False).encode(), "csv")
    reference, gx = check_contract(spec, text), validate(spec, text)
    assert not reference["success"] and not gx.success
    assert reference["failed"] == len(gx.failed) == 2


def test_a_worker_subprocess_reports_its_measurement(bench_data):
    comparison = bench.comparisons(["validation"], TINY)[1]
    result = bench.run_side(comparison.reference)
    assert "error" not in result, result
    assert result["facts"]["rows"] == TINY.rows
    assert result["peak_mb"] is not None


def test_unknown_case_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["nosuchcase"])
    assert "choose from validation, drift, landing, training" in capsys.readouterr().err
