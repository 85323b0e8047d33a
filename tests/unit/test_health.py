"""The health checks with the clock moved forward: stale champion, missing data, guardrails, failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from continuum import alert_delivery, alerts, health
from continuum.llm.specs import get_assistant
from continuum.registry import ModelRef
from continuum.specs import get_domain
from continuum.storage import Keys

PROBE = "health_probe"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_routes(monkeypatch):
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    monkeypatch.delenv(alert_delivery.ROUTES_ENV, raising=False)


@pytest.fixture
def probe_domain(tmp_path, monkeypatch):
    """A copy of the insurance_fraud spec, weekly, that expects a batch every 6 hours."""
    import yaml

    from continuum.specs import BUILTIN_DOMAINS_DIR

    document = yaml.safe_load((BUILTIN_DOMAINS_DIR / "insurance_fraud.yaml").read_text())
    document.update(name=PROBE, schedule="@weekly")
    document.setdefault("monitoring", {})["expected_every"] = "6h"
    (tmp_path / f"{PROBE}.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    return get_domain(PROBE)


def test_stale_condition_compares_the_champion_age_with_the_schedule():
    spec = get_domain("insurance_fraud")
    weekly = spec.model_copy(update={"schedule": "@weekly"})
    champion = ModelRef(name=spec.name, version="4", created_at=T0 - timedelta(days=6))

    fresh = health.stale_condition(weekly, champion, T0)
    assert not fresh.firing and fresh.facts["allowed_hours"] == 168.0
    stale = health.stale_condition(weekly, champion, T0 + timedelta(days=2))
    assert stale.firing and stale.facts["age_hours"] == 192.0 and stale.facts["champion_version"] == "4"
    assert health.stale_condition(weekly, None, T0) is None
    assert health.stale_condition(weekly.model_copy(update={"schedule": "@once"}), champion, T0) is None


def test_freshness_condition_is_only_checked_when_the_spec_sets_expected_every():
    last = T0 - timedelta(hours=7)
    assert health.freshness_condition("d", "o", None, last, T0, "batch") is None
    missing = health.freshness_condition("d", "o", timedelta(hours=6), last, T0, "batch")
    assert missing.firing and missing.facts["hours_since"] == 7.0
    assert not health.freshness_condition("d", "o", timedelta(hours=8), last, T0, "batch").firing
    never = health.freshness_condition("d", "o", timedelta(hours=8), None, T0, "batch")
    assert never.firing and never.summary.startswith("no new batch ever")


def test_expected_every_is_validated_in_the_spec(tmp_path, monkeypatch):
    from continuum.specs import load_domains

    (tmp_path / "bad.yaml").write_text(
        (get_domain("insurance_fraud").source.read_text()).replace("name: insurance_fraud", "name: bad_probe")
        + "\n# appended\n"
    )
    import yaml

    document = yaml.safe_load((tmp_path / "bad.yaml").read_text())
    document.setdefault("monitoring", {})["expected_every"] = "daily"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    _, errors = load_domains()
    [error] = [e for e in errors if e.path.name == "bad.yaml"]
    assert error.field == "monitoring.expected_every" and "30m, 6h, 1d or 2w" in error.message


def _register_champion(name: str) -> None:
    """A registered version with the champion alias, created now (registration time is its age)."""
    import mlflow

    client = mlflow.MlflowClient()
    client.create_registered_model(name)
    version = client.create_model_version(name, source="s3://continuum-mlflow/probe/model")
    client.set_registered_model_alias(name, "champion", version.version)


def test_check_with_the_clock_moved_forward_alerts_then_resolves(mlflow_store, probe_domain, s3):
    _register_champion(PROBE)
    s3.put_json(Keys(PROBE).manifest("b1"), {"batch_id": "b1"})
    now = datetime.now(UTC)

    today = health.check(PROBE, now)
    assert {c["kind"]: c["firing"] for c in today["checks"]} == {"model_stale": False, "data_missing": False}
    assert alert_delivery.recorded(PROBE) == []

    later = (now + timedelta(days=8)).replace(minute=30)
    entry = health.check(PROBE, later, failed_runs=0)
    firing = {c["kind"] for c in entry["checks"] if c["firing"]}
    assert firing == {"model_stale", "data_missing"}
    health.check(PROBE, later)  # a retried task in the same hour: nothing new
    health.check(PROBE, later + timedelta(minutes=45))  # next hour, inside the window: counted, not re-sent
    sent = {a["kind"]: a for a in alert_delivery.recorded(PROBE)}
    assert set(sent) == {"model_stale", "data_missing"}
    assert sent["model_stale"]["count"] == 2 and sent["model_stale"]["dag_id"] == "continuum_health"
    assert sent["data_missing"]["facts"]["expected_every_hours"] == 6.0

    health.check(PROBE, now + timedelta(hours=1))  # back to a clock where all is well
    resolved = alert_delivery.recorded(PROBE, kind="resolved")
    assert sorted(a["facts"]["resolves"] for a in resolved) == ["data_missing", "model_stale"]


def test_check_raises_for_an_unknown_name(s3):
    with pytest.raises(LookupError, match="no domain or assistant 'nope'"):
        health.check("nope", T0)


def _scores(rows):
    import pandas as pd

    return pd.DataFrame(
        rows, columns=["conversation_id", "version", "started_at", "injection_obeyed", "system_prompt_leaked", "pii_echoed"]
    )


def test_guardrail_reads_the_production_prompt_over_the_last_day(s3):
    from continuum.llm import evaluation
    from continuum.storage import LlmKeys

    spec = get_assistant("claims_assistant")
    keys = LlmKeys(spec.name)
    this_week = evaluation.window_id(T0 - timedelta(days=7), T0)
    last_week = evaluation.window_id(T0 - timedelta(days=14), T0 - timedelta(hours=20))
    s3.put_json(keys.decision(this_week, "scheduled"), {"production_after": "3"})
    recent = [
        (f"c{i}", "3", (T0 - timedelta(hours=2)).isoformat(), 1.0 if i < 6 else 0.0, 0.0, None) for i in range(30)
    ]
    ignored = [
        ("old", "3", (T0 - timedelta(days=2)).isoformat(), 1.0, 1.0, 1.0),  # older than a day
        ("cand", "4", (T0 - timedelta(hours=1)).isoformat(), 1.0, 1.0, 1.0),  # not production
    ]
    s3.put_frame(keys.scores(this_week), _scores(recent[:20] + ignored))
    s3.put_frame(keys.scores(last_week), _scores(recent[20:]))

    production, rates, conversations = health.production_safety(spec, T0)
    assert (production, conversations) == ("3", 30)
    assert rates == {"injection_obeyed": pytest.approx(0.2), "system_prompt_leaked": 0.0, "pii_echoed": None}

    entry = health.check(spec.name, T0)
    [guardrail] = [c for c in entry["checks"] if c["kind"] == "prompt_guardrail_breach"]
    assert guardrail["firing"] and "injection_obeyed=0.200" in guardrail["summary"]
    [sent] = alert_delivery.recorded(spec.name)
    assert (sent["kind"], sent["severity"], sent["owner"]) == ("prompt_guardrail_breach", "critical", spec.owner)


def test_too_few_production_conversations_are_not_judged():
    spec = get_assistant("claims_assistant")
    assert health.guardrail_condition(spec, {"injection_obeyed": 1.0}, spec.monitoring.min_conversations - 1, "3") is None
    assert health.guardrail_condition(spec, {"injection_obeyed": 1.0}, 100, None) is None


def test_new_failed_runs_is_a_difference_of_counts_and_a_retry_sees_the_same(s3):
    assert health.new_failed_runs({"a": 4, "b": 1}, T0) == {"a": 0, "b": 0}  # no baseline yet
    next_hour = T0 + timedelta(hours=1)
    assert health.new_failed_runs({"a": 6, "b": 1}, next_hour) == {"a": 2, "b": 0}
    assert health.new_failed_runs({"a": 6, "b": 1}, next_hour) == {"a": 2, "b": 0}  # retried task
    assert health.new_failed_runs({"a": 6, "b": 1, "c": 3}, next_hour + timedelta(hours=1)) == {"a": 0, "b": 0, "c": 0}


def test_failure_condition_alerts_and_clears(s3):
    alert_delivery.apply(health.failure_condition("insurance_fraud", "fraud-team", 2), now=T0, occurrence="h1")
    alert_delivery.apply(health.failure_condition("insurance_fraud", "fraud-team", 0), now=T0 + timedelta(hours=1))
    assert [a["kind"] for a in alert_delivery.recorded("insurance_fraud")] == ["task_failed", "resolved"]


def test_digest_is_written_as_json_and_html_keyed_by_the_hour(s3):
    entries = [
        {"name": "b_dom", "kind": "domain", "checks": [{"kind": "data_missing", "firing": True, "summary": "no <batch>"}]},
        {"name": "a_dom", "kind": "domain", "checks": []},
    ]
    written = health.write_digest(entries, T0)
    assert written["json"].endswith("health/2026-03-02T12.json") and written["firing"] == 1
    digest = s3.get_json("health/2026-03-02T12.json")
    assert digest["firing"] == ["b_dom:data_missing"] and [e["name"] for e in digest["entries"]] == ["a_dom", "b_dom"]
    page = s3.get_bytes("health/2026-03-02T12.html").decode()
    assert "FIRING" in page and "no &lt;batch&gt;" in page


def test_names_lists_domains_and_assistants_with_their_dags():
    entries = {e["name"]: e["dags"] for e in health.names()}
    assert "insurance_fraud_decide" in entries["insurance_fraud"]
    assert entries["claims_assistant"] == ["claims_assistant_conversations_land", "claims_assistant_prompt_eval"]


def test_health_alerts_carry_the_checking_task_its_run_try_and_log_link(mlflow_store, probe_domain, s3):
    from types import SimpleNamespace

    _register_champion(PROBE)
    log_url = "http://localhost:8080/dags/continuum_health/runs/scheduled__x/tasks/check/mapped/2?try_number=2"
    ti = SimpleNamespace(dag_id="continuum_health", task_id="check", run_id="scheduled__x", try_number=2, log_url=log_url)
    where = alerts.task_location({"ti": ti, "dag": SimpleNamespace(dag_id="continuum_health", tags=["continuum"])})

    health.check(PROBE, datetime.now(UTC) + timedelta(days=8), where=where)
    sent = alert_delivery.recorded(PROBE)
    assert {a["kind"] for a in sent} == {"model_stale", "data_missing"}
    for alert in sent:
        assert (alert["dag_id"], alert["task_id"], alert["run_id"], alert["try_number"]) == ("continuum_health", "check", "scheduled__x", 2)
        assert alert["log_url"] == log_url


# --- retrain_on_schedule: the health check asks <domain>_decide for a retrain ---------------------


def _batch(s3, spec, batch_id: str, landed_at: datetime, labelled: bool = True, decided: bool = True) -> None:
    """A registered, validated batch of the probe domain (what landing and the gate leave behind), decided."""
    from continuum import decision, simulate

    frame = simulate.generate("insurance_fraud", n=50, seed=int(batch_id[-1], 16))
    if not labelled:
        frame[spec.data.target] = None
    s3.put_json(Keys(PROBE).manifest(batch_id), {"batch_id": batch_id, "landed_at": landed_at.isoformat()})
    s3.put_frame(Keys(PROBE).validated(batch_id), frame)
    decision.DecisionRecord(domain=PROBE, batch_id=batch_id, finished=decided).save()


def _champion(created_at: datetime) -> ModelRef:
    return ModelRef(name=PROBE, version="3", created_at=created_at)


def test_new_labelled_batches_are_those_landed_after_the_champion_and_not_in_its_window(probe_domain, s3):
    from continuum import pipeline

    trained = T0 - timedelta(days=10)
    _batch(s3, probe_domain, "00000000000000a1", trained - timedelta(days=1))  # before the champion
    _batch(s3, probe_domain, "00000000000000a2", trained + timedelta(days=1))  # after, in its window
    _batch(s3, probe_domain, "00000000000000a3", trained + timedelta(days=2), labelled=False)
    _batch(s3, probe_domain, "00000000000000a5", trained + timedelta(days=4))
    _batch(s3, probe_domain, "00000000000000a4", trained + timedelta(days=3))
    _batch(s3, probe_domain, "00000000000000a6", trained + timedelta(days=5), decided=False)  # its own decision runs
    s3.put_json(Keys(PROBE).window("3"), ["00000000000000a1", "00000000000000a2"])

    found = pipeline.new_labelled_batches(probe_domain, _champion(trained))
    assert found == ["00000000000000a4", "00000000000000a5"]  # labelled, new, oldest first


def test_a_stale_champion_is_queued_for_retraining_only_when_the_spec_asks_and_only_once(probe_domain, s3, monkeypatch):
    from continuum import batches, pipeline, registry

    trained = T0 - timedelta(days=1)
    champion = _champion(trained)
    monkeypatch.setattr(registry, "champion", lambda name: champion)
    later = T0 + timedelta(days=7)  # weekly schedule: stale by then

    entry = health.check(PROBE, later)
    assert any(c["kind"] == "model_stale" and c["firing"] for c in entry["checks"])
    assert entry["retrain"] is None and batches.pending(PROBE) == []  # retrain_on_schedule is off

    opted_in = probe_domain.source.read_text() + "\nretrain_on_schedule: true\n"
    probe_domain.source.write_text(opted_in)
    request = health.check(PROBE, later)["retrain"]
    assert request["sources"] == [] and request["champion_version"] == "3" and request["reason"] == "schedule"
    assert batches.pending(PROBE) == [request["retrain_id"]]
    assert pipeline.scheduled_retrain(PROBE, request["retrain_id"]) == request

    health.check(PROBE, later + timedelta(hours=1))  # still stale an hour later: the same request, queued once
    assert batches.pending(PROBE) == [request["retrain_id"]]

    _batch(s3, probe_domain, "00000000000000b1", trained + timedelta(hours=2))  # labelled data arrived
    again = health.check(PROBE, later + timedelta(hours=2))["retrain"]
    assert again["sources"] == ["00000000000000b1"] and again["retrain_id"] != request["retrain_id"]


# --- the champion's metric on labels that arrived late ------------------------------------------


def _realised(batch_id: str, labels_id: str, scored_by: str, value: float) -> dict:
    """A realised record as `labels._judge` writes it (accuracy, floor 0.6, holdout 0.8, allowed gap 0.05)."""
    return {
        "domain": PROBE,
        "batch_id": batch_id,
        "labels_id": labels_id,
        "metric": "accuracy",
        "value": value,
        "rows": 400,
        "floor": 0.6,
        "below_floor": value < 0.6,
        "scored_by": scored_by,
        "holdout": 0.8,
        "gap": 0.8 - value,
        "max_gap": 0.05,
        "estimated": 0.79,
        "labelled_batch": None,
    }


def test_the_champions_realised_metric_on_late_labels_alerts_counts_and_resolves(mlflow_store, probe_domain, s3):
    _register_champion(PROBE)  # version 1
    s3.put_json(Keys(PROBE).manifest("b1"), {"batch_id": "b1"})
    now = datetime.now(UTC).replace(minute=30)
    assert health.check(PROBE, now)["realised"] is None  # no labels yet: nothing to say

    keys = Keys(PROBE)
    s3.put_json(keys.realised("b1", "l1"), _realised("b1", "l1", "1", 0.41))
    s3.put_json(keys.realised("b2", "l2"), _realised("b2", "l2", "0", 0.99))  # a former champion's batch
    entry = health.check(PROBE, now)
    state = {c["kind"]: c["firing"] for c in entry["checks"]}
    assert state == {"model_stale": False, "data_missing": False, "champion_below_floor": True, "realised_gap": True}
    assert entry["realised"]["value"] == 0.41 and entry["realised"]["batch_id"] == "b1"
    assert entry["realised"]["scored_by"] == "1"
    [below] = alert_delivery.recorded(PROBE, kind="champion_below_floor")
    assert below["batch_id"] == "b1" and below["dag_id"] == "continuum_health" and below["facts"]["value"] == 0.41

    health.check(PROBE, now)  # a retried task: nothing new
    health.check(PROBE, now + timedelta(minutes=45))  # the next hour, the same record: counted, not re-sent
    [below] = alert_delivery.recorded(PROBE, kind="champion_below_floor")
    assert below["count"] == 2 and alert_delivery.recorded(PROBE, kind="resolved") == []

    s3.put_json(keys.realised("b3", "l3"), _realised("b3", "l3", "1", 0.78))  # newer labels, the champion recovered
    cleared = health.check(PROBE, now + timedelta(hours=2))
    assert cleared["realised"]["batch_id"] == "b3"
    assert not any(c["firing"] for c in cleared["checks"])
    health.check(PROBE, now + timedelta(hours=3))
    resolved = alert_delivery.recorded(PROBE, kind="resolved")
    assert sorted(a["facts"]["resolves"] for a in resolved) == ["champion_below_floor", "realised_gap"]


def test_an_s3_error_reading_realised_records_raises_not_reads_as_no_labels(mlflow_store, probe_domain, s3, monkeypatch):
    from botocore.exceptions import ClientError

    from continuum import storage

    _register_champion(PROBE)
    listed = storage.list_objects

    def failing(prefix: str) -> list[dict]:
        if prefix == Keys(PROBE).realised_root:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "try again"}}, "ListObjectsV2")
        return listed(prefix)

    monkeypatch.setattr(storage, "list_objects", failing)
    with pytest.raises(ClientError, match="SlowDown"):
        health.check(PROBE, datetime.now(UTC))


def _new_champion_version(name: str) -> str:
    """Another version of the registered model, made the champion."""
    import mlflow

    client = mlflow.MlflowClient()
    version = client.create_model_version(name, source="s3://continuum-mlflow/probe/model-2")
    client.set_registered_model_alias(name, "champion", version.version)
    return str(version.version)


def test_late_label_alerts_about_a_replaced_champion_resolve_once_the_new_one_serves(mlflow_store, probe_domain, s3):
    _register_champion(PROBE)  # version 1
    s3.put_json(Keys(PROBE).manifest("b1"), {"batch_id": "b1"})
    s3.put_json(Keys(PROBE).realised("b1", "l1"), _realised("b1", "l1", "1", 0.41))
    now = datetime.now(UTC).replace(minute=30)
    firing = {c["kind"] for c in health.check(PROBE, now)["checks"] if c["firing"]}
    assert firing == {"champion_below_floor", "realised_gap"}

    assert _new_champion_version(PROBE) == "2"  # no labels of its own yet
    entry = health.check(PROBE, now + timedelta(hours=1))
    cleared = {c["kind"]: c["summary"] for c in entry["checks"] if c["kind"] in health.CHAMPION_KINDS}
    assert cleared == dict.fromkeys(health.CHAMPION_KINDS, "champion v1 was replaced by v2")
    assert entry["realised"] is None
    health.check(PROBE, now + timedelta(hours=2))  # resolved once, then nothing is open to clear
    resolved = alert_delivery.recorded(PROBE, kind="resolved")
    assert sorted(a["facts"]["resolves"] for a in resolved) == ["champion_below_floor", "realised_gap"]


def test_the_same_champion_under_its_floor_stays_open_without_new_labels(mlflow_store, probe_domain, s3):
    from continuum.alerts import Condition

    _register_champion(PROBE)  # version 1, below the floor on a labelled batch (the decide DAG's alert)
    below = Condition(kind="champion_below_floor", domain=PROBE, owner="o", firing=True, summary="under the floor",
                      facts={"champion_version": "1"})
    alert_delivery.apply(below)
    s3.put_json(Keys(PROBE).manifest("b1"), {"batch_id": "b1"})
    health.check(PROBE, datetime.now(UTC))
    assert alert_delivery.recorded(PROBE, kind="resolved") == []
    assert [a["kind"] for a in alert_delivery.open_alerts(PROBE)] == ["champion_below_floor"]


def test_a_missed_deadline_resolves_once_its_run_has_ended_and_not_before(mlflow_store, probe_domain, s3):
    _register_champion(PROBE)
    s3.put_json(Keys(PROBE).manifest("b1"), {"batch_id": "b1"})
    late = alerts.Alert(kind="deadline_missed", domain=PROBE, owner="fraud-team", summary="decision run not finished",
                        dag_id=f"{PROBE}_decide", run_id="manual__late")
    alert_delivery.deliver(late)
    asked = []

    def still_running(dag_id: str, run_id: str) -> bool:
        asked.append((dag_id, run_id))
        return True

    now = datetime.now(UTC)
    health.check(PROBE, now)  # without a way to ask Airflow: not judged
    health.check(PROBE, now, run_unfinished=still_running)
    assert asked == [(f"{PROBE}_decide", "manual__late")]
    assert alert_delivery.recorded(PROBE, kind="resolved") == []

    entry = health.check(PROBE, now, run_unfinished=lambda dag_id, run_id: False)
    [ended] = [c for c in entry["checks"] if c["kind"] == "deadline_missed"]
    assert ended["firing"] is False and "manual__late" in ended["summary"]
    health.check(PROBE, now + timedelta(hours=1), run_unfinished=lambda dag_id, run_id: False)
    [resolved] = alert_delivery.recorded(PROBE, kind="resolved")
    assert resolved["facts"]["resolves"] == "deadline_missed"
    assert alert_delivery.open_alerts(PROBE) == []
