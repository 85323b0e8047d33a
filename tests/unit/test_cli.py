"""The `continuum` command: user mistakes end in one line and exit code 2; JSON where promised."""

from __future__ import annotations

import json

import pytest

from continuum import cli


def test_unknown_domain_is_one_line_and_exit_2(capsys):
    assert cli.main(["status", "no_such_domain"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown domain 'no_such_domain'" in err[0] and "insurance_claim_risk" in err[0]


def test_missing_file_is_one_line_and_exit_2(capsys, s3, mlflow_store, tmp_path):
    assert cli.main(["ingest", "insurance_claim_risk", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_domains_lists_the_shipped_domains(capsys):
    assert cli.main(["domains"]) == 0
    out = capsys.readouterr().out
    for name in ("insurance_claim_risk", "insurance_fraud", "retail_recommender", "shopping_assistant", "claims_assistant"):
        assert name in out


def test_domains_reports_a_broken_assistant_spec_and_exits_1(capsys, tmp_path, monkeypatch):
    (tmp_path / "bad_assistant.yaml").write_text("kind: assistant\nname: bad_assistant\ndescription: x\n")
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    assert cli.main(["domains"]) == 1
    err = capsys.readouterr().err
    assert "bad_assistant.yaml" in err and "field 'owner'" in err


def test_status_of_a_domain_that_never_trained(capsys, s3, mlflow_store):
    assert cli.main(["status", "insurance_fraud"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["domain"] == "insurance_fraud" and payload["primary_metric"] == "recall_at_precision"
    assert payload["champion"] is None and payload["previous"] is None and payload["decisions"] == []
    assert payload["pending"] == []


def test_rollback_without_previous_says_so(capsys, s3, mlflow_store):
    assert cli.main(["rollback", "insurance_claim_risk"]) == 2
    assert "no previous champion" in capsys.readouterr().err


def test_ingest_without_run_lands_the_file_and_prints_json_last(capsys, s3, mlflow_store, tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("a,b\n1,2\n")
    assert cli.main(["ingest", "insurance_claim_risk", str(path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(last)
    assert record["landed"].startswith("s3://continuum/landing/insurance_claim_risk/")
    assert s3.list_keys("landing/insurance_claim_risk/")


@pytest.mark.parametrize("argv", [["platform"], ["ingest"], []])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_status_lists_the_batches_waiting_oldest_first(capsys, s3, mlflow_store):
    from continuum import landing

    landing.land_file("insurance_fraud", "a.csv", b"x\n1\n")
    landing.land_file("insurance_fraud", "b.csv", b"x\n2\n")
    registered = landing.register_landed("insurance_fraud")
    assert cli.main(["status", "insurance_fraud"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == registered
