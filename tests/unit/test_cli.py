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


def test_labels_without_run_lands_the_file_under_labels_and_prints_json_last(capsys, s3, mlflow_store, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("policy_id,has_claim\np1,0\n")
    assert cli.main(["labels", "insurance_claim_risk", str(path)]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["landed"].startswith("s3://continuum/labels/insurance_claim_risk/") and payload["labels_id"]
    assert s3.list_keys("labels/insurance_claim_risk/")
    assert cli.main(["labels", "insurance_claim_risk", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["platform"], ["ingest"], []])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


@pytest.mark.parametrize("command", ["status", "ingest"])
def test_invalid_spec_is_reported_with_its_file_and_field_not_as_unknown(
    command, capsys, s3, mlflow_store, tmp_path, monkeypatch
):
    from pathlib import Path

    shipped = Path(cli.specs.BUILTIN_DOMAINS_DIR) / "insurance_fraud.yaml"
    broken = shipped.read_text().replace("name: insurance_fraud", "name: my_fraud").replace(
        "drift_share: 0.3", "drift_share: 3"
    )
    (tmp_path / "specs").mkdir()
    spec_file = tmp_path / "specs" / "fraud_v2.yaml"  # file stem differs: found by its declared name
    spec_file.write_text(broken)
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path / "specs"))
    batch = tmp_path / "batch.csv"
    batch.write_text("a\n1\n")
    argv = ["status", "my_fraud"] if command == "status" else ["ingest", "my_fraud", str(batch)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(spec_file) in err[0] and "field 'monitoring.drift_share'" in err[0]
    assert "unknown domain" not in err[0]


def test_status_shows_validation_warnings_of_recent_batches(capsys, s3, mlflow_store, tmp_path, monkeypatch):
    """A duplicated row only warns: the batch is validated, and `status` names the warning."""
    import pandas as pd

    from continuum import pipeline, simulate
    from continuum.storage import Keys

    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "no_ids.yaml").write_text(
        "name: no_ids\ndescription: claims without ids\nowner: t\n"
        "data: {target: has_claim, columns: [{name: driver_age, type: int}, {name: region, type: category}]}\n"
    )
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(spec_dir))
    frame = simulate.generate("insurance_claim_risk", 50, seed=1)[["driver_age", "region", "has_claim"]]
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    keys = Keys("no_ids")
    s3.put_bytes(keys.raw("00000000000000b1", ".csv"), frame.to_csv(index=False).encode())
    s3.put_json(keys.manifest("00000000000000b1"), {"batch_id": "00000000000000b1", "raw_key": keys.raw("00000000000000b1", ".csv"), "extension": ".csv"})

    outcome = pipeline.run_gate("no_ids", "00000000000000b1")
    assert outcome["success"] and outcome["warnings"] == ["expect_compound_columns_to_be_unique"]

    assert cli.main(["status", "no_ids"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["warnings"][0]["batch_id"] == "00000000000000b1"
    assert payload["warnings"][0]["checks"] == ["expect_compound_columns_to_be_unique"]
    assert payload["decisions"][0]["validation"]["warnings"] == ["expect_compound_columns_to_be_unique"]
    # The record names the contract that decided it.
    assert payload["decisions"][0]["spec_hash"] == cli.specs.get_domain("no_ids").content_hash()
    report = s3.get_json(keys.validation_report("00000000000000b1"))
    assert report["warnings"][0]["severity"] == "warn" and "values" in report["warnings"][0]["summary"]


def test_champion_gaps_name_removed_retyped_and_no_longer_feature_columns():
    from continuum import specs

    spec = specs.get_domain("retail_recommender")
    inputs = {
        "item_popularity": "double",
        "hour_of_day": "long",
        "device": "string",
        "is_weekend": "boolean",
        "user_id": "long",  # a champion from before user_id became `feature: false`
        "basket_size": "long",  # a column the new spec removed
        "item_price": "string",  # retyped: the spec says float
    }
    gaps = cli.champion_gaps(spec, inputs)
    assert gaps == [
        "column 'user_id' is no longer a feature",
        "column 'basket_size' was removed",
        "column 'item_price' is now float, the champion was trained on string",
    ]
    assert cli.champion_gaps(spec, {"item_popularity": "double", "hour_of_day": "long"}) == []


def test_status_lists_the_batches_waiting_oldest_first(capsys, s3, mlflow_store):
    from continuum import landing

    landing.land_file("insurance_fraud", "a.csv", b"x\n1\n")
    landing.land_file("insurance_fraud", "b.csv", b"x\n2\n")
    registered = landing.register_landed("insurance_fraud")
    assert cli.main(["status", "insurance_fraud"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == registered
