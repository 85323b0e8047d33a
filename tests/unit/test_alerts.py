"""Alerts: the model, the formatter, routing, noise control and the decision-record conditions."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from alert_receivers import start_http_receiver

from continuum import alert_delivery, alerts, decision
from continuum.specs import get_domain

DAG_ID = "insurance_claim_risk__validate"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


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


@pytest.fixture(autouse=True)
def _no_routes(monkeypatch):
    """No webhook and no routing variable unless a test sets them."""
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    monkeypatch.delenv(alert_delivery.ROUTES_ENV, raising=False)


# --- the model ------------------------------------------------------------------------------------


def test_alert_from_context_reads_every_field():
    alert = alerts.alert_from_context(_context())

    assert alert.kind == "task_failed"
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
    assert alert.summary == f"{DAG_ID}.validate_batch failed"
    assert alert.hint.startswith("batch broke its data contract")
    assert alert.runbook == "docs/runbook.md#task_failed"
    assert alert.timestamp.endswith("Z") and alert.first_seen == alert.timestamp


def test_alert_from_context_prefers_explicit_domain_and_survives_missing_keys():
    alert = alerts.alert_from_context({"params": {"domain": "other_domain", "batch_id": "b1"}})
    assert (alert.domain, alert.batch_id, alert.dag_id, alert.task_id) == ("other_domain", "b1", "unknown", "unknown")
    assert alert.exception is None

    tagged = alerts.alert_from_context(_context(params={}, dag=SimpleNamespace(dag_id="x", tags=["domain:abc"])))
    assert tagged.domain == "abc"
    assert tagged.batch_id is None

    unsafe = alerts.alert_from_context({"params": {"domain": "../etc"}, "dag": SimpleNamespace(dag_id="x")})
    assert unsafe.domain == "unknown"


def test_alert_from_context_reads_a_deadline_context_of_plain_dicts():
    """A DeadlineAlert callback gets dag_run as the API's JSON, and no tags: the domain is passed in."""
    context = {
        "dag_run": {"dag_id": "insurance_fraud_train", "dag_run_id": "scheduled__x", "conf": {"batch_ids": ["b9"]}},
        "deadline": {"id": "d1", "deadline_time": "2026-03-02T10:00:00Z"},
    }
    alert = alerts.alert_from_context(context, kind="deadline_missed", domain="insurance_fraud", owner="fraud-team")
    assert (alert.kind, alert.dag_id, alert.run_id, alert.batch_id) == (
        "deadline_missed",
        "insurance_fraud_train",
        "scheduled__x",
        "b9",
    )
    assert (alert.domain, alert.owner, alert.severity) == ("insurance_fraud", "fraud-team", "error")


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


def test_unknown_kind_and_unsafe_domain_are_refused():
    with pytest.raises(ValueError, match="unknown alert kind 'oops'"):
        alerts.Alert(kind="oops", domain="d", summary="s")
    with pytest.raises(ValueError, match="not a domain or assistant name"):
        alerts.Alert(kind="task_failed", domain="../x", summary="s")


def test_runbook_hint_fills_in_domain_and_single_batch():
    hint = alerts.runbook_hint("validate_batch", "insurance_claim_risk", "abc123")
    assert "batches/insurance_claim_risk/abc123/validation.json" in hint
    assert "<domain>/<batch>" in alerts.runbook_hint("validate_batch")
    assert alerts.runbook_hint("some_other_task") == "read the task log"


def test_exception_is_one_short_line_with_emails_masked():
    long_error = RuntimeError("user jane.doe@example.com broke it " + "x" * 1000)
    alert = alerts.alert_from_context(_context(exception=long_error))
    assert "\n" not in alert.exception
    assert len(alert.exception) <= 300
    assert "jane.doe" not in alert.exception and "<email>" in alert.exception


def test_format_text_has_headline_facts_and_key_values():
    alert = alerts.alert_from_context(_context(), facts={"value": 0.71234567, "floor": 0.8})
    lines = alerts.format_text(alert).splitlines()

    assert lines[0] == f"[ERROR] task_failed insurance_claim_risk: {DAG_ID}.validate_batch failed"
    details = dict(line.split("=", 1) for line in lines[1:])
    assert details["fact.value"] == "0.7123" and details["fact.floor"] == "0.8"
    assert details["dag_id"] == DAG_ID
    assert details["batch_id"] == "abc123,def456"
    assert details["try"] == "2"
    assert details["error"] == "ValueError: column driver_age out of range"
    assert details["runbook"] == "docs/runbook.md#task_failed"
    counted = alerts.format_text(alert.with_(count=3, first_seen="2026-03-02T08:00:00Z")).splitlines()[0]
    assert counted.endswith("(x3 since 2026-03-02T08:00:00Z)")


def test_format_text_omits_unknown_details():
    text = alerts.format_text(alerts.alert_from_context({}))
    assert "batch_id=" not in text and "error=" not in text and "log=" not in text


# --- routing --------------------------------------------------------------------------------------


def test_routes_parse_owners_default_and_window():
    routing = alert_delivery.parse_routes(
        '{"dedup_minutes": 15, "owners": {"risk-team": [{"channel": "slack", "conn_id": "slack_risk"},'
        ' {"channel": "email", "to": "risk@example.com", "min_severity": "error"}],'
        ' "*": [{"channel": "slack", "conn_id": "slack_oncall"}]}}'
    )
    assert routing.dedup_minutes == 15
    assert [r.label for r in routing.for_owner("risk-team")] == ["slack:slack_risk", "email:default"]
    assert routing.for_owner("risk-team")[1].to == ("risk@example.com",)
    assert [r.label for r in routing.for_owner("someone-else")] == ["slack:slack_oncall"]
    assert alert_delivery.parse_routes(None).for_owner("x") == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"owners": {"a": [{"channel": "sms"}]}}', r"owners.a\[0\]: channel must be one of slack, email"),
        ('{"owners": {"a": [{"channel": "slack"}]}}', r"owners.a\[0\]: a slack route needs conn_id"),
        ('{"owners": {"a": [{"channel": "email"}]}}', r"owners.a\[0\]: an email route needs 'to'"),
        ('{"owners": {"a": [{"channel": "email", "to": ["x@y.z"], "min_severity": "loud"}]}}', "min_severity"),
        ('{"dedup_minutes": -1}', "dedup_minutes must be a number >= 0"),
    ],
)
def test_routes_errors_name_the_variable_and_entry(value, message):
    with pytest.raises(alert_delivery.RoutesError, match=message) as caught:
        alert_delivery.parse_routes(value)
    assert str(caught.value).startswith("continuum_alert_routes: ")


def test_invalid_routes_still_deliver_to_log_and_s3(s3, monkeypatch, caplog):
    monkeypatch.setenv(alert_delivery.ROUTES_ENV, "{broken")
    with caplog.at_level(logging.INFO, logger="continuum.alerts"):
        channels = alerts.deliver(alerts.alert_from_context(_context()))
    assert channels == ["log", "s3"]
    assert any("alert_routes_invalid" in r.getMessage() for r in caplog.records)


# --- noise control (pure) -------------------------------------------------------------------------


def _alert(kind="data_missing", at=T0):
    return alerts.Alert(kind=kind, domain="insurance_fraud", owner="fraud-team", summary="s", timestamp=f"{at:%Y-%m-%dT%H:%M:%SZ}")


def test_admit_sends_then_collapses_inside_the_window_then_sends_again():
    window = timedelta(minutes=60)
    action, first, state = alert_delivery.admit(None, _alert(), T0, window, "o1")
    assert (action, first.count, first.first_seen) == ("send", 1, "2026-03-02T09:00:00Z")
    state["audit_key"] = "alerts/insurance_fraud/x.json"

    later = T0 + timedelta(minutes=30)
    action, second, state = alert_delivery.admit(state, _alert(at=later), later, window, "o2")
    assert (action, second.count, second.first_seen) == ("collapse", 2, "2026-03-02T09:00:00Z")

    action, _, same = alert_delivery.admit(state, _alert(at=later), later, window, "o2")
    assert action == "duplicate" and same["count"] == 2  # a retried task repeats nothing

    after = T0 + timedelta(minutes=61)
    action, third, state = alert_delivery.admit(state, _alert(at=after), after, window, "o3")
    assert (action, third.count, third.first_seen) == ("send", 3, "2026-03-02T09:00:00Z")


def test_admit_starts_over_after_the_condition_closed():
    _, _, state = alert_delivery.admit(None, _alert(), T0, timedelta(hours=1), "o1")
    closed = {**state, "open": False, "audit_key": "k", "occurrences": []}
    action, alert, _ = alert_delivery.admit(closed, _alert(), T0 + timedelta(minutes=5), timedelta(hours=1), "o1")
    assert (action, alert.count, alert.first_seen) == ("send", 1, "2026-03-02T09:05:00Z")


# --- delivery through S3, the log and the webhook ---------------------------------------------------


def test_deliver_logs_one_line_and_writes_s3(s3, caplog):
    alert = alerts.alert_from_context(_context())

    with caplog.at_level(logging.INFO, logger="continuum.alerts"):
        channels = alerts.deliver(alert)

    assert channels == ["log", "s3"]
    [key] = s3.list_keys("alerts/insurance_claim_risk/")
    assert key.endswith("-task_failed-validate_batch.json")
    assert s3.get_json(key)["kind"] == "task_failed" and s3.get_json(key)["batch_id"] == "abc123,def456"
    records = [r for r in caplog.records if "event=alert " in r.getMessage()]
    assert len(records) == 1 and "\n" not in records[0].getMessage()
    assert f"dag_id={DAG_ID}" in records[0].getMessage()


def test_repeats_collapse_into_one_alert_with_a_count_and_clearing_resolves_once(s3):
    condition = alerts.Condition(kind="data_missing", domain="insurance_fraud", owner="fraud-team", firing=True, summary="no batch")

    assert alert_delivery.apply(condition, now=T0, occurrence="h1") == ["log", "s3"]
    assert alert_delivery.apply(condition, now=T0 + timedelta(minutes=10), occurrence="h2") == ["log", "s3"]
    assert alert_delivery.apply(condition, now=T0 + timedelta(minutes=10), occurrence="h2") == []

    [sent] = alert_delivery.recorded("insurance_fraud")
    assert (sent["kind"], sent["count"], sent["first_seen"]) == ("data_missing", 2, "2026-03-02T09:00:00Z")

    cleared = alerts.Condition(kind="data_missing", domain="insurance_fraud", owner="fraud-team", firing=False, summary="ok")
    assert alert_delivery.apply(cleared, now=T0 + timedelta(hours=2)) == ["log", "s3"]
    assert alert_delivery.apply(cleared, now=T0 + timedelta(hours=3)) == []  # resolved is sent once
    kinds = [a["kind"] for a in alert_delivery.recorded("insurance_fraud")]
    assert kinds == ["data_missing", "resolved"]
    resolved = alert_delivery.recorded("insurance_fraud", kind="resolved")[0]
    assert resolved["facts"] == {"resolves": "data_missing", "count": 2, "since": "2026-03-02T09:00:00Z"}


def test_a_condition_that_never_alerted_sends_no_resolved(s3):
    cleared = alerts.Condition(kind="model_stale", domain="insurance_fraud", owner="o", firing=False, summary="ok")
    assert alert_delivery.apply(cleared, now=T0) == []
    assert s3.list_keys("alerts/") == []


def test_deliver_survives_s3_failure(s3, monkeypatch, caplog):
    monkeypatch.setenv("CONTINUUM_BUCKET", "bucket-that-does-not-exist")

    with caplog.at_level(logging.WARNING, logger="continuum.alerts"):
        channels = alerts.deliver(alerts.alert_from_context(_context()))

    assert channels == ["log"]
    assert any("alert_state_failed" in r.getMessage() for r in caplog.records)
    assert any("alert_channel_failed channel=s3" in r.getMessage() for r in caplog.records)


@pytest.fixture
def receiver():
    recorder, server = start_http_receiver()
    yield recorder
    server.shutdown()
    server.server_close()


def test_deliver_posts_the_alert_as_json_with_slack_compatible_text(s3, receiver, monkeypatch):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, f"{receiver.url}/hook")
    alert = alerts.alert_from_context(_context())

    channels = alerts.deliver(alert)

    assert channels == ["log", "s3", "webhook"]
    [post] = receiver.on("/hook")
    assert post["content_type"] == "application/json"
    assert post["body"]["text"] == alerts.format_text(alert)
    assert post["body"]["alert"] == alert.to_dict()


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
    assert any("alert_channel_failed channel=webhook" in r.getMessage() for r in caplog.records)


def test_recorded_filters_by_domain_kind_and_time_oldest_first(s3):
    for minutes, domain, kind in ((0, "a_dom", "model_stale"), (5, "b_dom", "data_missing"), (10, "a_dom", "data_missing")):
        at = T0 + timedelta(minutes=minutes)
        alerts.deliver(alerts.Alert(kind=kind, domain=domain, summary="s", timestamp=f"{at:%Y-%m-%dT%H:%M:%SZ}"), now=at)
    assert [(a["domain"], a["kind"]) for a in alert_delivery.recorded()] == [
        ("a_dom", "model_stale"),
        ("b_dom", "data_missing"),
        ("a_dom", "data_missing"),
    ]
    assert [a["kind"] for a in alert_delivery.recorded("a_dom")] == ["model_stale", "data_missing"]
    assert [a["domain"] for a in alert_delivery.recorded(kind="data_missing", since=T0 + timedelta(minutes=6))] == ["a_dom"]
    with pytest.raises(ValueError, match="unknown alert kind"):
        alert_delivery.recorded(kind="nope")


# --- conditions from a decision record ---------------------------------------------------------------


def _record(batch_id, value=None, challenger=None, promoted=False, quarantined=False):
    record = decision.DecisionRecord(domain="insurance_claim_risk", batch_id=batch_id, quarantined=quarantined)
    record.validation = decision.Validation(success=not quarantined, failed=["driver_age in range"] if quarantined else [])
    if value is not None:
        record.performance = decision.Performance(metric="accuracy", value=value, floor=0.85)
    if challenger is not None:
        record.challenger = decision.Challenger(version=str(challenger[0]), blessed=challenger[1], why_not=[] if challenger[1] else ["worse than champion"])
    record.promoted = promoted
    return record


def _by_kind(conditions):
    return {c.kind: c for c in conditions}


def test_champion_below_floor_fires_only_when_no_blessed_challenger_replaced_it():
    spec = get_domain("insurance_claim_risk")
    assert spec.monitoring.primary_metric == "accuracy" and spec.monitoring.floor == 0.85

    below = _by_kind(alerts.decision_conditions(spec, _record("b1", value=0.61, challenger=(4, False)), history=[]))
    assert below["champion_below_floor"].firing
    assert below["champion_below_floor"].facts["value"] == 0.61 and below["champion_below_floor"].facts["floor"] == 0.85

    replaced = _by_kind(alerts.decision_conditions(spec, _record("b2", value=0.61, challenger=(5, True), promoted=True), history=[]))
    assert not replaced["champion_below_floor"].firing

    unlabelled = _by_kind(alerts.decision_conditions(spec, _record("b3"), history=[]))
    assert "champion_below_floor" not in unlabelled  # no labels: nothing to judge


def test_challenger_rejected_repeatedly_counts_the_streak_up_to_the_spec_setting():
    spec = get_domain("insurance_claim_risk")
    threshold = spec.blessing.alert_after_rejections
    history = [_record(f"h{i}", challenger=(i, False)) for i in range(threshold - 2, 0, -1)]
    history.append(_record("h0", challenger=(0, True)))

    short = _by_kind(alerts.decision_conditions(spec, _record("new", challenger=(9, False)), history=history))
    assert short["challenger_rejected_repeatedly"].facts["rejected_in_a_row"] == threshold - 1
    assert not short["challenger_rejected_repeatedly"].firing

    longer = [_record("prev", challenger=(8, False)), *history]
    fired = _by_kind(alerts.decision_conditions(spec, _record("new", challenger=(9, False)), history=longer))
    assert fired["challenger_rejected_repeatedly"].firing
    assert fired["challenger_rejected_repeatedly"].facts["rejected_in_a_row"] == threshold

    blessed = _by_kind(alerts.decision_conditions(spec, _record("new", challenger=(9, True)), history=longer))
    assert not blessed["challenger_rejected_repeatedly"].firing


def test_after_decision_sends_each_condition_once_per_batch_and_resolves(s3):
    spec = get_domain("insurance_claim_risk")
    record = _record("b1", value=0.6)
    alerts.after_decision(spec, record, now=T0)
    alerts.after_decision(spec, record, now=T0 + timedelta(minutes=1))  # a retried task
    [sent] = alert_delivery.recorded("insurance_claim_risk")
    assert (sent["kind"], sent["count"], sent["batch_id"], sent["owner"]) == ("champion_below_floor", 1, "b1", spec.owner)

    alerts.after_decision(spec, _record("b2", value=0.9), now=T0 + timedelta(hours=1))
    assert [a["kind"] for a in alert_delivery.recorded("insurance_claim_risk")] == ["champion_below_floor", "resolved"]


def test_a_quarantined_record_alerts_and_a_later_valid_batch_resolves(s3):
    spec = get_domain("insurance_claim_risk")
    alerts.after_decision(spec, _record("bad", quarantined=True), now=T0)
    alerts.after_decision(spec, _record("good"), now=T0 + timedelta(minutes=5))
    sent = alert_delivery.recorded("insurance_claim_risk")
    assert [a["kind"] for a in sent] == ["batch_quarantined", "resolved"]
    assert sent[0]["batch_id"] == "bad" and "driver_age in range" in sent[0]["summary"]


# --- the CLI -----------------------------------------------------------------------------------------


def test_cli_alerts_prints_json_lines_newest_last_with_filters(s3, capsys):
    import json

    from continuum import cli

    for minutes, domain, kind in ((0, "insurance_fraud", "data_missing"), (5, "insurance_fraud", "model_stale"), (9, "claims_assistant", "model_stale")):
        at = T0 + timedelta(minutes=minutes)
        alerts.deliver(alerts.Alert(kind=kind, domain=domain, summary="s", timestamp=f"{at:%Y-%m-%dT%H:%M:%SZ}"), now=at)
    capsys.readouterr()

    assert cli.main(["alerts"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["domain"], a["kind"]) for a in lines] == [
        ("insurance_fraud", "data_missing"),
        ("insurance_fraud", "model_stale"),
        ("claims_assistant", "model_stale"),
    ]
    assert cli.main(["alerts", "--domain", "insurance_fraud", "--since", "2026-03-02T09:01Z", "--kind", "model_stale"]) == 0
    [only] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (only["domain"], only["kind"], only["timestamp"]) == ("insurance_fraud", "model_stale", "2026-03-02T09:05:00Z")


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--kind", "nope"], "unknown alert kind 'nope'"), (["--since", "yesterday"], "not an ISO date"), (["--domain", "../x"], "not a domain")],
)
def test_cli_alerts_bad_arguments_are_one_line_and_exit_2(capsys, argv, message):
    from continuum import cli

    assert cli.main(["alerts", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_after_decision_carries_the_deciding_task_and_its_log_link(s3):
    spec = get_domain("insurance_claim_risk")
    where = alerts.task_location(_context())
    alerts.after_decision(spec, _record("b1", value=0.5), now=T0, **where)
    [sent] = alert_delivery.recorded("insurance_claim_risk")
    assert (sent["dag_id"], sent["task_id"], sent["try_number"]) == (DAG_ID, "validate_batch", 2)
    assert sent["log_url"].endswith("try_number=2")


def test_every_kind_has_its_runbook_section():
    from continuum import settings

    runbook = (settings.REPO_ROOT / "docs" / "runbook.md").read_text()
    headings = {line[3:].strip() for line in runbook.splitlines() if line.startswith("## ")}
    assert set(alerts.KINDS) <= headings


def test_the_readme_alert_example_is_what_the_promote_task_records(s3):
    import json
    import re
    from urllib.parse import quote

    from continuum import settings

    readme = (settings.REPO_ROOT / "README.md").read_text()
    example = json.loads(re.search(r"## On-call.*?```json\n(.*?)```", readme, re.S).group(1))
    spec = get_domain("insurance_claim_risk")
    record = _record("3f9c2a7b1d0e4c55", value=0.8123)
    record.champion = decision.ModelVersion(version="7")
    record.challenger = decision.Challenger(version="9", blessed=False, why_not=["accuracy 0.8301 is under the floor 0.85"])
    # The promote task's context as Airflow gives it (RuntimeTaskInstance builds log_url this way).
    dag_id, run_id = f"{spec.name}_decide", "asset_triggered__2026-03-02T09:10:00.412907+00:00"
    log_url = f"http://localhost:8080/dags/{dag_id}/runs/{quote(run_id)}/tasks/promote?try_number=1"
    ti = SimpleNamespace(dag_id=dag_id, task_id="promote", run_id=run_id, try_number=1, log_url=log_url)
    where = alerts.task_location({"ti": ti, "dag": SimpleNamespace(dag_id=dag_id, tags=[spec.name, "decide"])})
    alerts.after_decision(spec, record, now=datetime(2026, 3, 2, 9, 14, tzinfo=UTC), **where)
    [recorded] = alert_delivery.recorded(spec.name, kind="champion_below_floor")  # what `continuum alerts` prints
    assert recorded == example


def test_the_readme_routing_snippet_is_the_shipped_airflow_settings():
    import re

    import yaml

    from continuum import settings
    from continuum.local import airflow_settings

    readme = (settings.REPO_ROOT / "README.md").read_text()
    snippet = re.search(r"## On-call.*?```yaml\n(.*?)```", readme, re.S).group(1)
    shown = airflow_settings.parse({"airflow": yaml.safe_load(snippet)})
    shipped = airflow_settings.load()
    assert shown.variables[alert_delivery.ROUTES_VARIABLE] == shipped.variables[alert_delivery.ROUTES_VARIABLE]
    assert [c for c in shipped.connections if c.conn_id in ("slack_oncall", "smtp_oncall")] == shown.connections
