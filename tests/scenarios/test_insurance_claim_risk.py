"""The continuous-training loop on insurance_claim_risk, through the real DAGs (`dag.test()`)."""

from __future__ import annotations

import pytest

from continuum import alert_delivery, registry, storage
from continuum.storage import Keys

DOMAIN = "insurance_claim_risk"
pytestmark = pytest.mark.slow


def versions(name: str) -> list[str]:
    import mlflow

    return sorted(str(v.version) for v in mlflow.MlflowClient().search_model_versions(f"name='{name}'"))


@pytest.fixture
def trained(loop):
    """A loop whose first batch has trained and promoted the first champion."""
    record = loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=1))
    assert record["promoted"] is True, record
    return loop, record


def test_first_batch_trains_and_promotes(trained):
    _, record = trained
    assert record["validation"] == {
        "success": True,
        "failed": [],
        "warnings": [],
        "report": record["validation"]["report"],
        "reason": None,
    }
    assert record["quarantined"] is False
    assert record["retrain"] == {
        "triggered": True,
        "reasons": ["no_champion"],
        "waiting_for_labels": False,
        "carried_from": [],
    }
    assert record["champion_before"] is None  # judged against nothing: the domain had no champion
    assert record["promotion"]["outcome"] == "promoted" and record["promotion"]["shadow"]["passed"] is True
    assert record["finished"] is True and record["steps"] == ["gate", "monitor", "train", "promote", "score"]
    assert record["performance"] == {"metric": "accuracy", "value": None, "floor": 0.85}
    assert record["challenger"]["blessed"] is True and record["challenger"]["why_not"] == []
    assert record["challenger"]["metrics"]["accuracy"] >= 0.85
    assert registry.champion(DOMAIN).version == record["challenger"]["version"] == record["champion"]["version"]
    scores = storage.get_frame(Keys(DOMAIN).scores(record["batch_id"]))
    assert {"policy_id", "claim_probability", "risk_factor", "premium"} <= set(scores.columns)
    assert storage.get_json(Keys(DOMAIN).decision(record["batch_id"]))["promoted"] is True
    # Reason codes beside each premium, the checked distribution, the baselines and the params.
    assert list(scores.columns[-3:]) == ["reason_1", "reason_2", "reason_3"]
    assert scores["reason_1"].notna().mean() > 0.9  # empty only where no input moved the score by 0.0005
    summary = record["score_summary"]
    assert summary["rows"] == len(scores) and summary["columns"]["premium"]["mean"] == pytest.approx(scores["premium"].mean())
    baselines = record["baselines"]
    assert set(baselines["metrics"]) == {"class_prior", "logistic_regression"} and baselines["required"] is None
    assert baselines["gain"] == pytest.approx(record["challenger"]["metrics"]["accuracy"] - max(
        m["accuracy"] for m in baselines["metrics"].values()
    ))
    assert record["challenger"]["params"] == {"max_iter": 200, "learning_rate": 0.05}


def test_stable_batch_changes_nothing(trained):
    loop, first = trained
    record = loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=2))
    assert record["drift"]["detected"] is False, record["drift"]
    assert record["performance"]["value"] >= 0.85
    assert record["retrain"]["triggered"] is False and record["retrain"]["reasons"] == []
    assert record["challenger"] is None and record["promoted"] is False
    assert record["promotion"]["outcome"] == "no_challenger"
    assert versions(DOMAIN) == [first["champion"]["version"]]
    assert record["drift"]["report"].endswith("drift.html")
    assert b"<html" in storage.get_bytes(Keys(DOMAIN).drift_report(record["batch_id"]))[:200]


def test_covariate_drift_retrains_and_promotes(trained):
    loop, first = trained
    record = loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=3, faults=["covariate_drift"], drift=1.0))
    assert record["drift"]["detected"] is True, record["drift"]
    assert record["drift"]["share"] >= 0.5
    assert "drift" in record["retrain"]["reasons"]
    assert record["challenger"]["blessed"] is True, record["challenger"]["why_not"]
    assert record["promoted"] is True
    assert record["champion_before"]["version"] == first["champion"]["version"]
    assert record["promotion"]["previous"] == first["champion"]["version"]
    shadow = record["promotion"]["shadow"]
    assert shadow["passed"] is True and 0 < shadow["score_shift"] <= shadow["max_score_shift"]
    assert registry.champion(DOMAIN).version == record["challenger"]["version"]
    assert registry.previous(DOMAIN).version == first["champion"]["version"]


def test_concept_drift_is_caught_by_the_metric_floor(trained):
    loop, _ = trained
    record = loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=4, faults=["concept_drift"], drift=1.0))
    assert record["performance"]["value"] < 0.85
    assert "performance" in record["retrain"]["reasons"]
    assert record["challenger"] is not None


def test_broken_batch_is_quarantined_and_the_champion_untouched(trained):
    loop, first = trained
    record = loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=5, faults=["out_of_range", "unseen_category"]))
    assert record["quarantined"] is True and record["validation"]["success"] is False
    assert record["validation"]["failed"]
    assert record["challenger"] is None and record["promoted"] is False
    assert registry.champion(DOMAIN).version == first["champion"]["version"]
    quarantine = storage.list_keys(Keys(DOMAIN).quarantine(record["batch_id"]))
    assert any(k.endswith("report.json") for k in quarantine) and any("raw" in k for k in quarantine)
    alerts = storage.list_keys(f"alerts/{DOMAIN}/")
    assert any(storage.get_json(k)["batch_id"] == record["batch_id"] for k in alerts)


def test_corrupt_files_are_quarantined_and_the_next_good_batch_is_still_decided(oncall, trained, tmp_path):
    """Through the real decide DAG: binary junk named .csv and a truncated Parquet file, then a good batch.

    The owner hears of it on Slack and the webhook: one `batch_quarantined` from the deciding run
    (the second file only counts), and one `resolved` once a good batch passes the gate."""
    import io

    import numpy as np

    from continuum import decision, lease

    loop, first = trained
    champion = registry.champion(DOMAIN).version
    junk = tmp_path / "junk.csv"
    junk.write_bytes(np.random.default_rng(7).bytes(4096))
    buffer = io.BytesIO()
    loop.batch(DOMAIN, n=500, seed=8).to_parquet(buffer, index=False)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(buffer.getvalue()[:-200])
    ids = []
    for path, reason in ((junk, "binary data"), (truncated, "not a readable parquet file")):
        record = loop.ingest(DOMAIN, path=path)
        assert record["quarantined"] is True and record["finished"] is True
        assert reason in record["validation"]["reason"], record["validation"]
        assert record["challenger"] is None and registry.champion(DOMAIN).version == champion
        assert storage.list_keys(Keys(DOMAIN).quarantine(record["batch_id"]))
        assert lease.current(DOMAIN) is None  # the quarantining run gave the lease back
        ids.append(record["batch_id"])

    def received(kind: str) -> list[dict]:
        return [h["body"]["alert"] for h in oncall.http.on("/hook") if h["body"]["alert"]["kind"] == kind]

    [alert] = received("batch_quarantined")
    assert alert["batch_id"] == ids[0] and alert["dag_id"] == f"{DOMAIN}_decide"
    assert alert["run_id"].startswith("manual__") and f"/dags/{DOMAIN}_decide/runs/" in alert["log_url"]
    assert "binary data" in alert["summary"]
    slack = [p["body"]["text"] for p in oncall.http.on("/slack/oncall")]
    assert [t for t in slack if t.startswith("[WARNING] batch_quarantined")] and f"log={alert['log_url']}" in slack[-1]
    [stored] = alert_delivery.recorded(DOMAIN, kind="batch_quarantined")
    assert stored["count"] == 2  # the truncated file: counted into the first, not sent again

    good = loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=2))  # the platform keeps deciding
    assert good["finished"] is True and good["quarantined"] is False and good["scores"]
    [resolved] = [a for a in received("resolved") if a["facts"]["resolves"] == "batch_quarantined"]
    assert resolved["dag_id"] == f"{DOMAIN}_decide" and resolved["run_id"] != alert["run_id"]
    assert sum(t.startswith("[INFO] resolved") and "batch_quarantined" in t.splitlines()[0] for t in
               [p["body"]["text"] for p in oncall.http.on("/slack/oncall")]) == 1
    assert decision.load(DOMAIN, good["batch_id"]).done("score")
    assert registry.champion(DOMAIN).version == champion == good["champion"]["version"]


def test_rollback_restores_the_previous_champion(trained):
    loop, first = trained
    drifted = loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=3, faults=["covariate_drift"], drift=1.0))
    assert drifted["promoted"] is True
    registry.rollback(DOMAIN)
    assert registry.champion(DOMAIN).version == first["champion"]["version"]


def test_same_batch_ingested_twice_is_processed_once(trained):
    loop, first = trained
    path = loop.write(loop.batch(DOMAIN, seed=6))
    once = loop.ingest(DOMAIN, path=path)
    twice = loop.ingest(DOMAIN, path=path)
    assert once["batch_id"] == twice["batch_id"]
    assert twice == once
    assert len(storage.list_keys(Keys(DOMAIN).batch(once["batch_id"]) + "duplicates/")) == 1
    assert versions(DOMAIN) == [first["champion"]["version"]]


def test_unlabelled_batch_is_checked_for_drift_and_scored(trained):
    loop, first = trained
    record = loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=7, faults=["unlabelled"]))
    assert record["validation"]["success"] is True and record["quarantined"] is False
    assert record["performance"]["value"] is None
    assert record["drift"]["report"] and record["drift"]["detected"] is False
    assert record["retrain"]["triggered"] is False
    scores = storage.get_frame(Keys(DOMAIN).scores(record["batch_id"]))
    assert len(scores) == 2000 and scores["premium"].gt(0).all()
