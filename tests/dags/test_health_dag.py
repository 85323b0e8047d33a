"""The continuum_health DAG: parses, is fit for on-call, and runs end to end with dag.test()."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

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
