"""The continuum_health DAG: parses, is fit for on-call, and runs end to end with dag.test()."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import probe_domain
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def health_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "continuum_health.py"))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["continuum_health"]


def test_health_dag_parses_hourly_with_tags_retries_and_callbacks(health_dag):
    assert health_dag.schedule == "@hourly"
    assert {"continuum", "health"} <= set(health_dag.tags)
    assert health_dag.doc_md and "When it fails" in health_dag.doc_md
    assert health_dag.max_active_runs == 1 and not health_dag.catchup
    assert {t.task_id for t in health_dag.tasks} == {"failed_runs_last_hour", "names", "check", "digest"}
    for task in health_dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.on_failure_callback, task.task_id
        assert task.retry_delay <= timedelta(minutes=5)


@pytest.mark.slow
def test_health_dag_runs_writes_the_digest_and_its_alerts_link_the_check(airflow_db, s3, mlflow_store, monkeypatch, spec_copy):
    from continuum import alert_delivery, alerts

    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    monkeypatch.delenv(alert_delivery.ROUTES_ENV, raising=False)
    spec_copy("insurance_fraud", "health_dag_probe", monitoring={"expected_every": "6h"})  # no batch ever: data_missing
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags" / "continuum_health.py")).dags["continuum_health"]
    run = dag.test()
    assert str(run.state) == "success"
    [digest_key] = [k for k in s3.list_keys("health/") if k.endswith(".json") and "/state/" not in k]
    digest = s3.get_json(digest_key)
    names = {e["name"] for e in digest["entries"]}
    assert {"insurance_fraud", "claims_assistant"} <= names
    assert s3.exists(digest_key.replace(".json", ".html"))
    assert s3.exists("health/state/failed_runs.json")
    [missing] = alert_delivery.recorded("health_dag_probe", kind="data_missing")
    assert (missing["dag_id"], missing["task_id"], missing["run_id"], missing["try_number"]) == (
        "continuum_health",
        "check",
        run.run_id,
        1,
    )
    assert "/dags/continuum_health/runs/" in missing["log_url"] and "/tasks/check/mapped/" in missing["log_url"]


LATE = "health_late_probe"
LATE_SPEC = probe_domain.spec(
    LATE,
    "A probe domain for the health DAG: hourly schedule, a batch expected every 6 hours.",
    schedule="@hourly",
    monitoring={"expected_every": "6h"},
)
_rows = probe_domain.rows


def _train_champion(seed: int) -> str:
    """Train, register and promote a champion on fresh rows (the real train and promote steps)."""
    from continuum import pipeline, registry, training
    from continuum.specs import get_domain

    spec = get_domain(LATE)
    rows = _rows(600, seed=seed, start=900_000 + 1000 * seed)
    batch_id = f"{seed:016d}"
    result = training.train_and_register(
        spec, rows.iloc[:450], rows.iloc[450:], batch_id=batch_id, dataset_uri="s3://continuum/probe"
    )
    pipeline._save_lineage(spec, result.version, rows.iloc[:450], [batch_id])
    registry.promote(LATE, result.version)
    return result.version


def _champion_and_a_scored_batch():
    """A trained champion and one unlabelled batch it scored (the real train and score steps)."""
    from continuum import decision, pipeline, storage, validation
    from continuum.specs import get_domain
    from continuum.storage import Keys

    spec = get_domain(LATE)
    _train_champion(seed=0)
    served = _rows(300, seed=1)
    unlabelled = served.drop(columns="y")
    batch_id = storage.batch_id_for(unlabelled.to_csv(index=False).encode())
    storage.put_frame(Keys(LATE).validated(batch_id), validation.conform(spec, unlabelled))
    record = decision.load(LATE, batch_id)
    for step in ("gate", "monitor", "train", "promote"):
        record.mark(step)
    record.save()
    pipeline.run_scoring(LATE, batch_id)
    return batch_id, served


@pytest.mark.slow
def test_health_dag_with_the_clock_moved_forward_and_late_labels_alerts_counts_and_resolves(
    airflow_db, mlflow_store, oncall, tmp_path, monkeypatch
):
    """model_stale, data_missing, champion_below_floor and realised_gap (late labels) reach Slack, email and the webhook
    from the health DAG's own run; the next hour only counts them; a batch registered clears data_missing once, and a
    new champion clears model_stale, champion_below_floor and realised_gap once."""
    import json
    import os
    from datetime import UTC, datetime
    from urllib.parse import quote

    import yaml
    from alert_receivers import MAIL_TO, mail_text

    from continuum import alert_delivery, labels, landing

    (tmp_path / f"{LATE}.yaml").write_text(yaml.safe_dump(LATE_SPEC))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    # A window longer than the hour between two health runs (the default 60 minutes re-sends every hour).
    routes = json.loads(os.environ[alert_delivery.ROUTES_ENV])
    monkeypatch.setenv(alert_delivery.ROUTES_ENV, json.dumps({**routes, "dedup_minutes": 90}))
    batch_id, served = _champion_and_a_scored_batch()  # scored, never registered: no batch ever arrived
    flipped = served[["row_id", "y"]].assign(y=1 - served["y"])  # the labels that arrived late: the world turned
    labels.land_labels_file(LATE, "late.csv", flipped.to_csv(index=False).encode())
    [outcome] = labels.register_landed_labels(LATE)  # what <domain>_land's register_labels does
    assert outcome["batches"] == [batch_id]
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags" / "continuum_health.py")).dags["continuum_health"]
    hours_ahead = datetime.now(UTC).replace(minute=10, second=0, microsecond=0) + timedelta(hours=3)

    def from_health(run_id: str) -> dict[str, dict]:
        hooks = [h["body"]["alert"] for h in oncall.http.on("/hook")]
        return {a["kind"]: a for a in hooks if a["domain"] == LATE and a["run_id"] == run_id}

    first = dag.test(logical_date=hours_ahead)  # the champion is 2-3 hours old, its schedule allows 1
    assert str(first.state) == "success"
    sent = from_health(first.run_id)
    assert set(sent) == {"model_stale", "data_missing", "champion_below_floor", "realised_gap"}
    for alert in sent.values():
        assert (alert["dag_id"], alert["task_id"]) == ("continuum_health", "check")
        assert f"/dags/continuum_health/runs/{quote(first.run_id)}/tasks/check/mapped/" in alert["log_url"]
    assert sent["champion_below_floor"]["facts"]["value"] < 0.6 and sent["champion_below_floor"]["batch_id"] == batch_id
    slack = [p["body"]["text"] for p in oncall.http.on("/slack/oncall") if f"run_id={first.run_id}" in p["body"]["text"]]
    assert sorted(t.split(" ")[1] for t in slack) == ["champion_below_floor", "data_missing", "model_stale", "realised_gap"]
    mails = [m for m in oncall.mail.messages if f"run_id={first.run_id}" in mail_text(m)]
    assert sorted(mail_text(m) for m in mails) == sorted(slack) and all(m["X-Envelope-To"] == MAIL_TO for m in mails)
    digest = oncall.s3.get_json(f"health/{hours_ahead:%Y-%m-%dT%H}.json")
    [entry] = [e for e in digest["entries"] if e["name"] == LATE]
    assert entry["realised"]["batch_id"] == batch_id and entry["realised"]["value"] < 0.6

    received = len(oncall.http.on("/hook"))
    second = dag.test(logical_date=hours_ahead + timedelta(hours=1))  # the next hour, inside the window
    assert str(second.state) == "success"
    assert len(oncall.http.on("/hook")) == received  # nothing new sent
    counts = {a["kind"]: a["count"] for a in alert_delivery.recorded(LATE) if a["run_id"] == first.run_id}
    assert counts["model_stale"] == 2 and counts["data_missing"] == 2

    [labelled] = outcome["labelled_batches"]
    assert landing.register_landed(LATE) == [labelled]  # the labelled batch the late labels made arrives
    third = dag.test(logical_date=hours_ahead + timedelta(hours=1, minutes=20))  # a rerun of that hour
    assert str(third.state) == "success"
    new = [h["body"]["alert"] for h in oncall.http.on("/hook")][received:]
    assert [(a["kind"], a["facts"]["resolves"], a["run_id"]) for a in new] == [("resolved", "data_missing", third.run_id)]
    assert sum("resolved" in p["body"]["text"].split(" ")[1] for p in oncall.http.on("/slack/oncall")) == 1
    assert [m["Subject"].split(": ")[1].split(" ")[0] for m in oncall.mail.messages if "resolved" in m["Subject"]] == [
        "data_missing"
    ]

    received = len(oncall.http.on("/hook"))
    _train_champion(seed=2)  # a new champion: fresh again
    now = datetime.now(UTC)
    fourth = dag.test(logical_date=now.replace(minute=0, second=0, microsecond=0))
    assert str(fourth.state) == "success"
    new = [h["body"]["alert"] for h in oncall.http.on("/hook")][received:]
    # fresh again, and the late labels were about the champion it replaced
    assert sorted((a["kind"], a["facts"]["resolves"], a["run_id"]) for a in new) == [
        ("resolved", kind, fourth.run_id) for kind in ("champion_below_floor", "model_stale", "realised_gap")
    ]
    fifth = dag.test(logical_date=now.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=10))  # its rerun
    assert str(fifth.state) == "success"
    assert len(oncall.http.on("/hook")) == received + 3  # resolved exactly once each
