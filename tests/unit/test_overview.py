"""What the Continuum page shows, read from a real (moto) S3 and a real (SQLite) MLflow store."""

from __future__ import annotations

import math
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from continuum import alert_delivery, overview, registry, specs
from continuum.alerts import Alert, Condition
from continuum.decision import (
    Challenger,
    DecisionRecord,
    Drift,
    Estimate,
    ModelVersion,
    Performance,
    Promotion,
    Retrain,
    Validation,
)
from continuum.llm import prompts
from continuum.llm.specs import get_assistant
from continuum.storage import Keys, LlmKeys

DOMAIN = "insurance_claim_risk"
BATCH_A, BATCH_B, BATCH_C = "0000000000000aaa", "0000000000000bbb", "0000000000000ccc"


def register(name: str, accuracies: list[float]) -> list[str]:
    """One registered version per accuracy, each from its own run (no artefact: the page reads metadata)."""
    import mlflow

    client = mlflow.MlflowClient()
    client.create_registered_model(name)
    experiment = mlflow.set_experiment(name).experiment_id
    versions = []
    for accuracy in accuracies:
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "accuracy", accuracy)
        client.log_metric(run.info.run_id, "champion_accuracy", 0.5)
        versions.append(str(client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id).version))
    return versions


def promoted(batch_id: str, value: float, champion: str) -> DecisionRecord:
    return DecisionRecord(
        domain=DOMAIN, batch_id=batch_id,
        validation=Validation(success=True, report=f"s3://continuum/{Keys(DOMAIN).validation_report(batch_id)}"),
        drift=Drift(detected=True, share=0.4, report=f"s3://continuum/{Keys(DOMAIN).drift_report(batch_id)}"),
        performance=Performance(metric="accuracy", value=value, floor=0.85),
        retrain=Retrain(triggered=True, reasons=["drift"]),
        challenger=Challenger(version=champion, blessed=True),
        promotion=Promotion(outcome="promoted"), promoted=True, champion=ModelVersion(version=champion),
        steps=["gate", "monitor", "train", "promote", "score"], finished=True,
    )


def test_a_domain_shows_its_roles_decisions_open_alerts_and_chart_points(s3, mlflow_store):
    v1, v2 = register(DOMAIN, [0.88, 0.91])
    registry.promote(DOMAIN, v1)
    registry.promote(DOMAIN, v2)
    promoted(BATCH_A, 0.90, v1).save()
    time.sleep(1.05)  # S3 keeps LastModified to the second: the order of saves must be visible
    quarantined = DecisionRecord(
        domain=DOMAIN, batch_id=BATCH_B, quarantined=True,
        validation=Validation(success=False, failed=["driver_age in range"], reason="2 checks failed",
                              report=f"s3://continuum/{Keys(DOMAIN).validation_report(BATCH_B)}"),
        steps=["gate"], finished=True,
    )
    quarantined.save()
    time.sleep(1.05)
    record = promoted(BATCH_C, 0.87, v2)
    record.scores = f"s3://continuum/{Keys(DOMAIN).scores(BATCH_C)}"  # realised metrics exist for scored batches
    record.estimate = Estimate(metric="accuracy", value=0.86, version=v2, rows=500)
    record.save()
    s3.put_json(Keys(DOMAIN).realised(BATCH_C, "00000000000000l1"), {"labels_id": "00000000000000l1", "value": 0.84})
    now = datetime.now(UTC) + timedelta(hours=3)
    alert_delivery.deliver(Alert(kind="champion_below_floor", domain=DOMAIN, owner="risk", summary="accuracy 0.80 < 0.85"))
    cleared = Condition(kind="model_stale", domain=DOMAIN, owner="risk", firing=True, summary="old")
    alert_delivery.apply(cleared)
    alert_delivery.apply(Condition(kind="model_stale", domain=DOMAIN, owner="risk", firing=False, summary="ok"))

    view = overview.domain_view(specs.get_domain(DOMAIN), now)

    assert view.unavailable == [] and view.roles_read and view.decisions_read and view.alerts_read
    assert (view.champion.version, view.previous.version) == (v2, v1)
    assert view.champion.metrics["accuracy"] == pytest.approx(0.91)
    assert 3 * 3600 - 60 < view.champion.age_seconds < 3 * 3600 + 600
    assert [d.batch_id for d in view.decisions] == [BATCH_C, BATCH_B, BATCH_A]  # newest first
    assert [d.outcome for d in view.decisions] == ["promoted", "quarantined", "promoted"]
    assert view.decisions[1].detail == "2 checks failed" and view.decisions[1].validation_report
    assert not view.decisions[1].drift_report and view.decisions[0].drift_report
    # oldest first; the quarantined batch has no metric, so no point; realised from late labels, estimated from CBPE
    assert [p.batch_id for p in view.points] == [BATCH_A, BATCH_C]
    assert view.points[1].values == {"champion": 0.87, "realised": 0.84, "estimated": 0.86}
    assert [(a["kind"], a["summary"], a["severity"]) for a in view.alerts] == [
        ("champion_below_floor", "accuracy 0.80 < 0.85", "critical")
    ]  # model_stale was resolved

    never_ran = overview.domain_view(specs.get_domain("insurance_fraud"), now)
    assert never_ran.roles_read and never_ran.decisions_read and never_ran.alerts_read and never_ran.unavailable == []
    assert never_ran.champion is None and never_ran.previous is None
    assert never_ran.decisions == [] and never_ran.alerts == [] and never_ran.points == []


@pytest.mark.parametrize(
    ("realised", "estimated", "expected"),
    [
        (None, None, {"champion": 0.9}),
        (0.8, 0.85, {"champion": 0.9, "realised": 0.8, "estimated": 0.85}),
        (math.nan, math.nan, {"champion": 0.9}),  # NaN is not a metric
    ],
)
def test_a_point_takes_the_champion_metric_and_the_realised_and_estimated_ones(realised, estimated, expected):
    record = promoted(BATCH_A, 0.9, "1")
    if estimated is not None:
        record.estimate = Estimate(metric="accuracy", value=estimated, version="1", rows=100)
    assert overview.point(datetime(2026, 1, 1, tzinfo=UTC), record, realised).values == expected


def test_a_record_without_any_metric_is_no_point():
    record = DecisionRecord(domain=DOMAIN, batch_id=BATCH_A, steps=["gate"])
    assert overview.point(datetime(2026, 1, 1, tzinfo=UTC), record) is None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (DecisionRecord(domain=DOMAIN, batch_id=BATCH_A, steps=["gate", "monitor"]), ("in_progress", "done: gate, monitor")),
        (DecisionRecord(domain=DOMAIN, batch_id=BATCH_A, finished=True), ("kept", "no retrain needed")),
        (DecisionRecord(domain=DOMAIN, batch_id=BATCH_A, retrain=Retrain(triggered=True, reasons=["drift"],
                                                                           waiting_for_labels=True)),
         ("waiting_for_labels", "retrain asked for on an unlabelled batch: drift")),
        (DecisionRecord(domain=DOMAIN, batch_id=BATCH_A, challenger=Challenger(version="3", why_not=["below floor"]),
                        promotion=Promotion(outcome="not_blessed", reasons=["below floor"])), ("not_blessed", "below floor")),
        (DecisionRecord(domain=DOMAIN, batch_id=BATCH_A, challenger=Challenger(version="3", blessed=True),
                        promotion=Promotion(outcome="refused", reasons=["shadow: NaN score"])), ("refused", "shadow: NaN score")),
    ],
)
def test_outcome_names_what_happened_and_why(record, expected):
    assert overview.outcome(record) == expected


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_mlflow_down_leaves_roles_unknown_says_so_and_is_asked_once(s3, monkeypatch):
    import mlflow

    promoted(BATCH_A, 0.9, "1").save()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    calls = []
    real_champion = registry.champion
    monkeypatch.setattr(registry, "champion", lambda name: calls.append(name) or real_champion(name))
    reader = overview._Reader()
    try:
        first = overview.domain_view(specs.get_domain(DOMAIN), datetime.now(UTC), reader)
        second = overview.domain_view(specs.get_domain("insurance_fraud"), datetime.now(UTC), reader)
    finally:
        mlflow.set_tracking_uri(None)  # process-global: the next test's MLFLOW_TRACKING_URI must win

    for view in (first, second):
        assert not view.roles_read and view.champion is None
        assert any(line.startswith("MLflow at http://127.0.0.1:") and "unreachable" in line for line in view.unavailable)
    assert calls == [DOMAIN]  # the second domain did not wait for MLflow again
    assert first.decisions_read and [d.batch_id for d in first.decisions] == [BATCH_A]  # S3 still read


def test_s3_down_leaves_decisions_and_alerts_unknown_and_says_so(s3, monkeypatch, caplog):
    from continuum import storage

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage.client.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="continuum.overview"):
            view = overview.domain_view(specs.get_domain(DOMAIN), datetime.now(UTC))
    finally:
        storage.client.cache_clear()
    assert view.roles_read and not view.decisions_read and not view.alerts_read
    assert view.unavailable == [f"S3 at {storage_endpoint()} is unreachable: start it or set AWS_ENDPOINT_URL"]
    assert "event=overview_unavailable source=S3 name=insurance_claim_risk" in caplog.text


def storage_endpoint() -> str:
    import os

    return os.environ["AWS_ENDPOINT_URL"]


def test_an_assistant_shows_production_and_candidates_with_their_latest_scores(s3, mlflow_store):
    spec = get_assistant("claims_assistant")
    prompts.seed(spec)
    production, candidates = prompts.production(spec.name), prompts.candidates(spec.name)
    scores = {production: {"n": 120, "primary": 0.71, "ci": [0.66, 0.76], "safety": {"pii_leak": 0.0},
                           "cost_per_conversation": 0.0012}}
    s3.put_json(LlmKeys(spec.name).decision("20260101T000000-20260102T000000", "scheduled"),
                {"assistant": spec.name, "window": "20260101T000000-20260102T000000", "versions": scores,
                 "production_before": production, "production_after": production, "promoted": False,
                 "reason": "no candidate beat production"})

    view = overview.assistant_view(spec)

    assert view.unavailable == [] and view.roles_read and view.decision_read
    assert view.production["version"] == production and view.production["latest_scores"]["primary"] == 0.71
    assert [c["version"] for c in view.candidates] == candidates and candidates
    assert all(c["latest_scores"] is None for c in view.candidates)  # not evaluated in that window
    assert view.latest_decision["reason"] == "no candidate beat production"


def test_build_covers_every_spec_and_reports_a_broken_one(s3, tmp_path, monkeypatch):
    (tmp_path / "broken.yaml").write_text("name: broken\nowner: me\n")
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    built = overview.build()
    assert {d.name for d in built.domains} == {s.name for s in specs.load_domains()[0]}
    assert {"claims_assistant", "shopping_assistant"} <= {a.name for a in built.assistants}
    assert any("broken.yaml" in line for line in built.spec_errors)
