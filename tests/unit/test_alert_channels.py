"""Every alert kind, end to end through the real channels: Slack and email via the Airflow
provider notifiers, the JSON webhook, and the S3 audit trail.

A local HTTP receiver stands in for Slack and the webhook, a local aiosmtpd server for
email. Connections and the routing variable are given the way Airflow reads them from
the environment (AIRFLOW_CONN_*, AIRFLOW_VAR_*), so the plugin's code path is the real one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from alert_receivers import MAIL_FROM, MAIL_TO, mail_text

from continuum import alert_delivery, alerts, decision, health
from continuum.registry import ModelRef
from continuum.specs import get_domain

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FROM, TO = MAIL_FROM, MAIL_TO  # the `oncall` fixture (tests/conftest.py) routes every owner to these


def _context(try_number: int):
    from airflow.sdk import DAG

    dag = DAG("insurance_fraud_decide", schedule=None, tags=["continuum", "insurance_fraud"])
    task = SimpleNamespace(task_id="train", owner="fraud-team")
    ti = SimpleNamespace(
        dag_id=dag.dag_id, task_id="train", run_id="scheduled__1", try_number=try_number, task=task, log_url="http://ui/log"
    )
    return {"dag": dag, "ti": ti, "task": task, "exception": RuntimeError("MLflow answered 503")}


def _record(batch_id, **fields):
    record = decision.DecisionRecord(domain="insurance_claim_risk", batch_id=batch_id, **fields)
    record.validation = decision.Validation(success=not fields.get("quarantined"), failed=["age in range"] if fields.get("quarantined") else [])
    return record


def _performance(value):
    return decision.Performance(metric="accuracy", value=value, floor=0.85)


def _challenger(version, blessed):
    return decision.Challenger(version=str(version), blessed=blessed, why_not=[] if blessed else ["worse than champion"])


def _deadline(oncall, n):
    """Run the DeadlineAlert's callback exactly as Airflow's callback supervisor does."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    deadline = oncall.notifier.deadline_alert(45, domain="insurance_fraud", owner="fraud-team", what="training")
    context = {
        "dag_run": {"dag_id": "insurance_fraud_decide", "dag_run_id": f"scheduled__{n}", "conf": {}, "queued_at": f"2026-03-02T0{n}:00:00Z"},
        "deadline": {"id": f"d{n}", "deadline_time": f"2026-03-02T0{n}:45:00Z"},
    }
    ok, error = execute_callback(
        deadline.callback.path, {**deadline.callback.kwargs, "context": context}, None, None, structlog.get_logger()
    )
    assert ok, error


def _apply(condition, n):
    return alert_delivery.apply(condition, now=T0 + timedelta(minutes=n), occurrence=f"test:{n}")


def _stale(spec, days):
    return health.stale_condition(spec, ModelRef(name=spec.name, version="3", created_at=T0 - timedelta(days=days)), T0)


def _realised_gap(value):
    """`labels.conditions` on a realised record of late labels (holdout 0.92 at blessing, 0.05 allowed)."""
    from continuum import labels

    spec = get_domain("insurance_claim_risk")
    record = {"batch_id": "00000000000000b1", "value": value, "metric": "accuracy", "floor": 0.85, "scored_by": "3",
              "rows": 400, "labels_id": "00000000000000l1", "below_floor": value < 0.85, "holdout": 0.92,
              "gap": 0.92 - value, "max_gap": 0.05, "estimated": 0.91}
    return next(c for c in labels.conditions(spec, record) if c.kind == "realised_gap")


def _estimated_drop(value):
    """`performance_estimate.drop_condition` on a CBPE estimate (holdout 0.92 at blessing)."""
    from continuum import performance_estimate

    spec = get_domain("insurance_claim_risk")
    estimate = decision.Estimate(metric="accuracy", value=value, version="3", rows=400, reference=0.92,
                                 drop=0.92 - value, max_drop=0.05)
    return performance_estimate.drop_condition(spec, "00000000000000b2", estimate)


def _guardrail(rate):
    from continuum.llm.specs import get_assistant

    spec = get_assistant("claims_assistant")
    return health.guardrail_condition(spec, {"injection_obeyed": rate, "pii_echoed": 0.0}, 200, "3")


# kind -> (domain, fire(oncall, n), clear(oncall) or None when the kind has nothing to clear)
SCENARIOS = {
    "task_failed": (
        "insurance_fraud",
        lambda oncall, n: oncall.notifier.failure_notifier()(_context(n)),
        lambda oncall: _apply(health.failure_condition("insurance_fraud", "fraud-team", 0), 30),
    ),
    "batch_quarantined": (
        "insurance_claim_risk",
        lambda oncall, n: alerts.after_decision(get_domain("insurance_claim_risk"), _record(f"bad{n}", quarantined=True), now=T0 + timedelta(minutes=n)),
        lambda oncall: alerts.after_decision(get_domain("insurance_claim_risk"), _record("good"), now=T0 + timedelta(minutes=30)),
    ),
    "champion_below_floor": (
        "insurance_claim_risk",
        lambda oncall, n: alerts.after_decision(get_domain("insurance_claim_risk"), _record(f"b{n}", performance=_performance(0.7)), now=T0 + timedelta(minutes=n)),
        lambda oncall: alerts.after_decision(get_domain("insurance_claim_risk"), _record("b9", performance=_performance(0.9)), now=T0 + timedelta(minutes=30)),
    ),
    "challenger_rejected_repeatedly": (
        "insurance_claim_risk",
        lambda oncall, n: [
            _apply(c, n)
            for c in alerts.decision_conditions(
                get_domain("insurance_claim_risk"),
                _record(f"r{n}", challenger=_challenger(n + 10, False)),
                history=[_record(f"old{i}", challenger=_challenger(i, False)) for i in range(5)],
            )
            if c.kind == "challenger_rejected_repeatedly"
        ],
        lambda oncall: [
            _apply(c, 30)
            for c in alerts.decision_conditions(get_domain("insurance_claim_risk"), _record("ok", challenger=_challenger(20, True)), history=[])
            if c.kind == "challenger_rejected_repeatedly"
        ],
    ),
    "model_stale": (
        "insurance_fraud",
        lambda oncall, n: _apply(_stale(get_domain("insurance_fraud"), days=30), n),
        lambda oncall: _apply(_stale(get_domain("insurance_fraud"), days=0), 30),
    ),
    "data_missing": (
        "insurance_fraud",
        lambda oncall, n: _apply(health.freshness_condition("insurance_fraud", "fraud-team", timedelta(hours=6), T0 - timedelta(days=2), T0, "batch"), n),
        lambda oncall: _apply(health.freshness_condition("insurance_fraud", "fraud-team", timedelta(hours=6), T0, T0, "batch"), 30),
    ),
    "prompt_guardrail_breach": (
        "claims_assistant",
        lambda oncall, n: _apply(_guardrail(0.2), n),
        lambda oncall: _apply(_guardrail(0.01), 30),
    ),
    "realised_gap": (
        "insurance_claim_risk",
        lambda oncall, n: _apply(_realised_gap(0.86), n),
        lambda oncall: _apply(_realised_gap(0.9), 30),
    ),
    "estimated_drop": (
        "insurance_claim_risk",
        lambda oncall, n: _apply(_estimated_drop(0.8), n),
        lambda oncall: _apply(_estimated_drop(0.91), 30),
    ),
    "deadline_missed": ("insurance_fraud", _deadline, None),
}


def test_every_kind_has_a_scenario():
    assert set(SCENARIOS) | {"resolved"} == set(alerts.KINDS)


def _headline(text: str) -> str:
    return text.splitlines()[0]


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_each_kind_reaches_every_channel_once_with_a_count_then_resolves(oncall, kind):
    domain, fire, clear = SCENARIOS[kind]

    fire(oncall, 1)
    fire(oncall, 2)  # the same kind and domain inside the window: collapsed into the first

    slack = oncall.http.on("/slack/oncall")
    hooks = oncall.http.on("/hook")
    assert len(slack) == 1 and len(hooks) == 1 and len(oncall.mail.messages) == 1
    assert _headline(slack[0]["body"]["text"]).startswith(f"[{alerts.KINDS[kind].upper()}] {kind} {domain}: ")
    assert hooks[0]["body"]["alert"]["kind"] == kind
    assert hooks[0]["body"]["text"] == slack[0]["body"]["text"]
    mail = oncall.mail.messages[0]
    assert mail["Subject"].startswith(f"[continuum {alerts.KINDS[kind]}] {kind} {domain}: ")
    assert (mail["From"], mail["X-Envelope-To"]) == (FROM, TO)
    assert mail_text(mail) == slack[0]["body"]["text"]
    [audit] = alert_delivery.recorded(domain, kind=kind)
    assert audit["count"] == 2 and audit["runbook"] == f"docs/runbook.md#{kind}"

    if clear is None:
        return
    clear(oncall)
    clear(oncall)  # resolved is sent once
    slack = oncall.http.on("/slack/oncall")
    assert len(slack) == 2 and len(oncall.http.on("/hook")) == 2 and len(oncall.mail.messages) == 2
    assert _headline(slack[1]["body"]["text"]).startswith(f"[INFO] resolved {domain}: {kind} is back to normal (alerted 2 times")
    assert oncall.mail.messages[1]["Subject"].startswith(f"[continuum info] resolved {domain}: {kind}")
    [resolved] = alert_delivery.recorded(domain, kind="resolved")
    assert resolved["facts"]["resolves"] == kind


def test_a_failing_channel_does_not_stop_the_others(oncall, monkeypatch, caplog):
    routes = {"owners": {"*": [{"channel": "slack", "conn_id": "slack_broken"}, {"channel": "email", "conn_id": "smtp_missing", "to": [TO]}, {"channel": "slack", "conn_id": "slack_oncall"}]}}
    monkeypatch.setenv(alert_delivery.ROUTES_ENV, json.dumps(routes))

    with caplog.at_level(logging.WARNING, logger="continuum.alerts"):
        oncall.notifier.failure_notifier()(_context(1))

    assert len(oncall.http.on("/broken/slack")) >= 1  # it was tried, and answered 500
    assert len(oncall.http.on("/slack/oncall")) == 1 and len(oncall.http.on("/hook")) == 1
    assert [a["kind"] for a in alert_delivery.recorded("insurance_fraud")] == ["task_failed"]
    failures = [r.getMessage() for r in caplog.records if "alert_channel_failed" in r.getMessage()]
    assert any("channel=slack:slack_broken" in m for m in failures)
    assert any("channel=email:smtp_missing" in m for m in failures)


def test_routes_send_each_owner_to_its_own_channels(oncall, monkeypatch):
    routes = {
        "owners": {
            "risk-team": [{"channel": "email", "conn_id": "smtp_oncall", "to": ["risk@example.com"], "min_severity": "error"}],
            "*": [{"channel": "slack", "conn_id": "slack_oncall"}],
        }
    }
    monkeypatch.setenv(alert_delivery.ROUTES_ENV, json.dumps(routes))
    risk = get_domain("insurance_claim_risk")
    assert risk.owner == "risk-team"

    alerts.after_decision(risk, _record("b1", performance=_performance(0.5)), now=T0)  # critical
    alerts.after_decision(risk, _record("q1", quarantined=True), now=T0)  # warning: under min_severity
    _apply(_stale(get_domain("insurance_fraud"), days=30), 1)  # fraud-team: the "*" route

    assert [m["X-Envelope-To"] for m in oncall.mail.messages] == ["risk@example.com"]
    assert "champion_below_floor insurance_claim_risk" in oncall.mail.messages[0]["Subject"]
    assert [_headline(p["body"]["text"]).split(":")[0] for p in oncall.http.on("/slack/oncall")] == [
        "[WARNING] model_stale insurance_fraud"
    ]


def test_the_routing_variable_in_airflow_settings_yaml_parses():
    from continuum.local import airflow_settings

    value = airflow_settings.load().variables[alert_delivery.ROUTES_VARIABLE]
    routing = alert_delivery.parse_routes(value)
    assert routing.dedup_minutes > 0 and routing.owners


def test_deadline_alert_is_an_airflow_deadline_on_the_queued_time(oncall):
    from airflow.sdk.definitions.callback import SyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    deadline = oncall.notifier.deadline_alert(90, domain="insurance_fraud", owner="fraud-team")
    assert isinstance(deadline, DeadlineAlert) and isinstance(deadline.callback, SyncCallback)
    assert deadline.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert deadline.interval == timedelta(minutes=90)
    assert deadline.callback.path == "continuum_notifier.ContinuumNotifier"
    assert deadline.callback.kwargs["kind"] == "deadline_missed"

    sized = oncall.notifier.deadline_alert(None, domain="insurance_fraud", owner="fraud-team", done_task="score")
    assert isinstance(sized.reference, oncall.notifier.RecentRuntimeDeadline) and sized.interval == timedelta(0)
    assert sized.reference.done_task == "score" and sized.callback.kwargs["facts"] == {"deadline_sized_by": "recent_runs"}


def test_a_missed_deadline_names_the_run_its_link_and_the_minutes_it_had(oncall):
    _deadline(oncall, 1)
    [alert] = alert_delivery.recorded("insurance_fraud", kind="deadline_missed")
    assert alert["summary"] == "training not finished 45 minutes after it was queued"
    assert (alert["dag_id"], alert["run_id"], alert["task_id"]) == ("insurance_fraud_decide", "scheduled__1", None)
    assert alert["log_url"].endswith("/dags/insurance_fraud_decide/runs/scheduled__1")
    assert alert["facts"]["allowed_minutes"] == 45.0 and alert["facts"]["deadline_minutes"] == 45
