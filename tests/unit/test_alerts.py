"""Alerts: from an Airflow-shaped context to a log line, an S3 object and a webhook POST."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from types import SimpleNamespace

import pytest

from continuum import alerts, settings

DAG_ID = "insurance_claim_risk__validate"


def _context(**overrides):
    dag = SimpleNamespace(dag_id=DAG_ID, tags=["continuum", "insurance_claim_risk", "validation"], owner="x")
    task = SimpleNamespace(task_id="validate_batch", owner="risk-team")
    ti = SimpleNamespace(
        dag_id=DAG_ID,
        task_id="validate_batch",
        run_id="manual__2025-01-01",
        try_number=2,
        log_url="http://localhost:8080/dags/x/runs/y/tasks/validate_batch?try_number=2",
        task=task,
    )
    context = {
        "dag": dag,
        "ti": ti,
        "task": task,
        "dag_run": SimpleNamespace(run_id="manual__2025-01-01", conf={}),
        "params": {"batch_ids": ["abc123", "def456"]},
        "exception": ValueError("column driver_age out of range\nTraceback line that must not appear"),
    }
    context.update(overrides)
    return context


def test_alert_from_context_reads_every_field():
    alert = alerts.alert_from_context(_context())

    assert alert.dag_id == DAG_ID
    assert alert.task_id == "validate_batch"
    assert alert.run_id == "manual__2025-01-01"
    assert alert.domain == "insurance_claim_risk"
    assert alert.batch_id == "abc123,def456"
    assert alert.owner == "risk-team"
    assert alert.try_number == 2
    assert alert.log_url.endswith("try_number=2")
    assert alert.exception == "ValueError: column driver_age out of range"
    assert alert.severity == "error"
    assert alert.title == f"{DAG_ID}.validate_batch failed"
    assert alert.runbook.startswith("batch broke its data contract")
    assert alert.timestamp.endswith("Z")


def test_alert_from_context_prefers_explicit_domain_and_survives_missing_keys():
    alert = alerts.alert_from_context({"params": {"domain": "other_domain", "batch_id": "b1"}})
    assert (alert.domain, alert.batch_id, alert.dag_id, alert.task_id) == (
        "other_domain",
        "b1",
        "unknown",
        "unknown",
    )
    assert alert.exception is None

    tagged = alerts.alert_from_context(
        _context(params={}, dag=SimpleNamespace(dag_id="x", tags=["domain:abc"]))
    )
    assert tagged.domain == "abc"
    assert tagged.batch_id is None

    unsafe = alerts.alert_from_context({"params": {"domain": "../etc"}, "dag": SimpleNamespace(dag_id="x")})
    assert unsafe.domain == "unknown"


def test_alert_from_context_takes_batch_from_dag_run_conf_and_task_instance_key():
    context = _context(params={}, dag_run=SimpleNamespace(run_id="r", conf={"batch_id": "from_conf"}))
    context["task_instance"] = context.pop("ti")
    alert = alerts.alert_from_context(context)
    assert alert.batch_id == "from_conf"
    assert alert.try_number == 2


def test_alert_from_context_survives_properties_that_raise():
    class BrokenTaskInstance:
        dag_id = DAG_ID
        task_id = "score"

        @property
        def log_url(self):
            raise RuntimeError("no api base_url outside a task")

    alert = alerts.alert_from_context({"ti": BrokenTaskInstance()})
    assert alert.log_url is None
    assert alert.task_id == "score"


def test_runbook_hint_fills_in_domain_and_single_batch():
    hint = alerts.runbook_hint("validate_batch", "insurance_claim_risk", "abc123")
    assert "batches/insurance_claim_risk/abc123/validation.json" in hint
    assert "<domain>/<batch>" in alerts.runbook_hint("validate_batch")
    assert alerts.runbook_hint("some_other_task").startswith("read the task log")


def test_exception_is_one_short_line_with_emails_masked():
    long_error = RuntimeError("user jane.doe@example.com broke it " + "x" * 1000)
    alert = alerts.alert_from_context(_context(exception=long_error))
    assert "\n" not in alert.exception
    assert len(alert.exception) <= 300
    assert "jane.doe" not in alert.exception and "<email>" in alert.exception


def test_format_text_has_headline_and_key_values():
    alert = alerts.alert_from_context(_context())
    lines = alerts.format_text(alert).splitlines()

    assert lines[0] == f"[ERROR] insurance_claim_risk: {DAG_ID}.validate_batch failed"
    details = dict(line.split("=", 1) for line in lines[1:])
    assert details["dag_id"] == DAG_ID
    assert details["batch_id"] == "abc123,def456"
    assert details["try"] == "2"
    assert details["error"] == "ValueError: column driver_age out of range"
    assert "runbook" in details and "at" in details


def test_format_text_omits_unknown_details():
    text = alerts.format_text(alerts.alert_from_context({}))
    assert "batch_id=" not in text and "error=" not in text and "log=" not in text


def test_deliver_logs_one_line_and_writes_s3(s3, monkeypatch, caplog):
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    alert = alerts.alert_from_context(_context())

    with caplog.at_level(logging.INFO, logger="continuum.alerts"):
        channels = alerts.deliver(alert)

    assert channels == ["log", "s3"]
    key = alerts.alert_key(alert)
    assert key.startswith("alerts/insurance_claim_risk/") and key.endswith(f"-{DAG_ID}-validate_batch.json")
    assert s3.list_keys("alerts/insurance_claim_risk/") == [key]
    assert s3.get_json(key) == alert.to_dict()
    records = [r for r in caplog.records if r.name == "continuum.alerts"]
    assert len(records) == 1
    assert "\n" not in records[0].getMessage()
    assert f"dag_id={DAG_ID}" in records[0].getMessage()


def test_deliver_survives_s3_failure(s3, monkeypatch, caplog):
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    monkeypatch.setenv("CONTINUUM_BUCKET", "bucket-that-does-not-exist")

    with caplog.at_level(logging.WARNING, logger="continuum.alerts"):
        channels = alerts.deliver(alerts.alert_from_context(_context()))

    assert channels == ["log"]
    assert any("alert_s3_failed" in r.getMessage() for r in caplog.records)


class _Recorder(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"content_type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """A local HTTP server that records the POSTs it receives."""
    _Recorder.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Recorder.received
    server.shutdown()
    server.server_close()


def test_deliver_posts_slack_compatible_json(s3, webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv(alerts.WEBHOOK_ENV, url)
    alert = alerts.alert_from_context(_context())

    channels = alerts.deliver(alert)

    assert channels == ["log", "s3", "webhook"]
    assert received == [{"content_type": "application/json", "body": {"text": alerts.format_text(alert)}}]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("url", [f"http://127.0.0.1:{_closed_port()}/hook", "ftp://example.invalid/hook"])
def test_webhook_failure_is_logged_not_raised(s3, monkeypatch, caplog, url):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, url)

    with caplog.at_level(logging.WARNING, logger="continuum.alerts"):
        channels = alerts.deliver(alerts.alert_from_context(_context()))

    assert channels == ["log", "s3"]
    assert any("alert_webhook_failed" in r.getMessage() for r in caplog.records)


def test_notifier_delivers_through_airflow_callback_protocol(s3, webhook, monkeypatch):
    """The plugin's notifier, called the way Airflow calls a callback: notifier(context)."""
    url, received = webhook
    monkeypatch.setenv(alerts.WEBHOOK_ENV, url)
    monkeypatch.syspath_prepend(str(settings.plugins_dir()))  # Airflow does the same for plugins/
    from airflow.sdk import DAG

    from continuum_notifier import ContinuumNotifier, failure_notifier

    real_dag = DAG(DAG_ID, schedule=None, tags=["continuum", "insurance_claim_risk"])
    notifier = failure_notifier(title="{{ ti.task_id }} broke")
    assert isinstance(notifier, ContinuumNotifier)
    notifier(_context(dag=real_dag))

    assert received[0]["body"]["text"].startswith("[ERROR] insurance_claim_risk: validate_batch broke")
    assert len(s3.list_keys("alerts/insurance_claim_risk/")) == 1
