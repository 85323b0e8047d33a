"""One decision at a time per domain: idempotent steps, resume, waiting for labels, CAS, shadow, rollback.

Steps are called directly (`continuum.pipeline.run_*`, what each task of `<domain>_decide`
calls) where a failure has to be placed between two of them; the real DAG runs where
the order of batches matters.
"""

from __future__ import annotations

import pytest

from continuum import batches, decision, landing, lease, pipeline, registry, storage
from continuum.storage import Keys

DOMAIN = "insurance_claim_risk"
pytestmark = pytest.mark.slow


def versions(name: str) -> list[str]:
    import mlflow

    return sorted(str(v.version) for v in mlflow.MlflowClient().search_model_versions(f"name='{name}'"))


def land(domain: str, frame) -> str:
    """Land and register one batch without any DAG: no asset event exists for it."""
    import io

    buffer = io.BytesIO()
    frame.to_csv(buffer, index=False)
    landing.land_file(domain, "batch.csv", buffer.getvalue())
    [batch_id] = landing.register_landed(domain)
    return batch_id


def decide(domain: str, batch_id: str, until: str = "score") -> decision.DecisionRecord:
    steps = [pipeline.run_gate, pipeline.run_monitor, pipeline.run_training, pipeline.run_promotion, pipeline.run_scoring]
    names = ["gate", "monitor", "train", "promote", "score"]
    for step in steps[: names.index(until) + 1]:
        step(domain, batch_id)
    return decision.load(domain, batch_id)


@pytest.fixture
def judged(loop):
    """v1 is champion; a drifted labelled batch has a blessed challenger judged against v1, not yet promoted."""
    first = decide(DOMAIN, land(DOMAIN, loop.batch(DOMAIN, seed=1)))
    assert first.promoted and first.finished
    batch_id = land(DOMAIN, loop.batch(DOMAIN, seed=3, faults=["covariate_drift"], drift=1.0))
    record = decide(DOMAIN, batch_id, until="train")
    assert record.challenger.blessed and record.champion_before.version == first.champion.version
    return first, batch_id


def test_a_batch_with_no_asset_event_is_still_decided(loop):
    from continuum import dagrun

    batch_id = land(DOMAIN, loop.batch(DOMAIN, seed=1))  # registered, its event lost
    assert batches.pending(DOMAIN) == [batch_id]
    dagrun.run(f"{DOMAIN}_decide")  # a run with no event and no params
    record = decision.load(DOMAIN, batch_id)
    assert record.finished and record.promoted
    assert batches.pending(DOMAIN) == []
    assert lease.current(DOMAIN) is None  # the run gave the domain's decision lease back


def test_while_another_run_holds_the_lease_a_run_skips_and_the_cli_refuses(loop, capsys):
    """The scheduler's run skips (no failure, no retry, no alert); `ingest --run` says who holds it."""
    from continuum import cli, dagrun

    batch_id = land(DOMAIN, loop.batch(DOMAIN, n=300, seed=1))
    lease.acquire(DOMAIN, "asset_triggered__2026-03-02T12:00:00_abc", batch_id)  # e.g. the scheduler's run
    assert dagrun.run(f"{DOMAIN}_decide") == "success"
    assert decision.load(DOMAIN, batch_id).steps == [] and batches.pending(DOMAIN) == [batch_id]
    assert storage.list_keys(f"alerts/{DOMAIN}/") == []
    assert lease.current(DOMAIN).holder == "asset_triggered__2026-03-02T12:00:00_abc"  # left alone

    path = loop.write(loop.batch(DOMAIN, n=300, seed=2))
    capsys.readouterr()
    assert cli.main(["ingest", DOMAIN, str(path), "--run"]) == 4
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("continuum:")]
    assert len(err) == 1 and "being decided by run asset_triggered__2026-03-02T12:00:00_abc" in err[0]
    assert f"batch {batch_id}" in err[0]
    assert decision.load(DOMAIN, batch_id).steps == []  # nothing was decided


def test_monitor_retry_after_the_baseline_was_registered_keeps_no_champion(loop, monkeypatch):
    from continuum import monitoring

    domain = "retail_recommender"
    batch_id = land(domain, loop.batch(domain, n=3000, seed=21))
    pipeline.run_gate(domain, batch_id)
    real = monitoring.champion_metric
    monkeypatch.setattr(monitoring, "champion_metric", lambda *a: (_ for _ in ()).throw(ConnectionError("mlflow")))
    with pytest.raises(ConnectionError):
        pipeline.run_monitor(domain, batch_id)  # died after registering and promoting the baseline
    assert registry.champion(domain).tags["role"] == "baseline"
    monkeypatch.setattr(monitoring, "champion_metric", real)
    outcome = pipeline.run_monitor(domain, batch_id)  # the retry
    assert outcome["reasons"] == ["no_champion"] and outcome["retrain"] is True
    assert versions(domain) == ["1"]  # the retry registered no second baseline
    assert decision.load(domain, batch_id).champion.version == "1"


def test_first_unlabelled_batch_of_a_domain_with_a_baseline_waits_for_labels(loop):
    domain = "retail_recommender"
    batch_id = land(domain, loop.batch(domain, n=3000, seed=22, faults=["unlabelled"]))
    record = decide(domain, batch_id)
    assert record.retrain.reasons == ["no_champion"] and record.retrain.waiting_for_labels is True
    assert record.challenger is None and record.promotion.outcome == "no_challenger"
    assert record.extra["scoring"].startswith("skipped") and record.finished
    assert versions(domain) == []


def test_unlabelled_drift_waits_for_labels_and_the_next_labelled_batch_retrains(loop):
    first = decide(DOMAIN, land(DOMAIN, loop.batch(DOMAIN, seed=1)))
    unlabelled = land(DOMAIN, loop.batch(DOMAIN, seed=3, faults=["covariate_drift", "unlabelled"], drift=1.0))
    waiting = decide(DOMAIN, unlabelled)
    assert waiting.drift.detected and waiting.retrain.reasons == ["drift"]
    assert waiting.retrain.waiting_for_labels is True
    assert waiting.challenger is None and "champion_on_holdout" not in waiting.extra  # no in-sample comparison
    assert versions(DOMAIN) == [first.champion.version]
    assert waiting.scores  # still scored by the champion

    labelled = decide(DOMAIN, land(DOMAIN, loop.batch(DOMAIN, seed=4)))
    assert "drift" in labelled.retrain.reasons and labelled.retrain.carried_from == [unlabelled]
    assert labelled.retrain.waiting_for_labels is False
    assert labelled.challenger is not None and labelled.champion_before.version == first.champion.version
    assert not storage.exists(Keys(DOMAIN).retrain_request())  # served


def test_training_twice_registers_one_version(judged):
    first, batch_id = judged
    record = decision.load(DOMAIN, batch_id)
    record.steps.remove("train")  # as if the task died after registering, before recording itself done
    record.save()
    pipeline.run_training(DOMAIN, batch_id)
    assert versions(DOMAIN) == sorted([first.champion.version, record.challenger.version])
    assert decision.load(DOMAIN, batch_id).challenger.version == record.challenger.version


def test_champion_moved_between_judging_and_promotion_is_judged_again(judged):
    first, batch_id = judged
    other = _another_version(batch_id)
    registry.promote(DOMAIN, other)  # e.g. someone promoted by hand
    outcome = pipeline.run_promotion(DOMAIN, batch_id)
    record = decision.load(DOMAIN, batch_id)
    assert record.champion_before.version == other  # judged again, against the new champion
    assert any(f"champion moved from v{first.champion.version} to v{other}" in r for r in record.promotion.reasons)
    if outcome["promoted"]:
        assert registry.roles(DOMAIN) == {"champion": record.challenger.version, "previous": other}
    else:
        assert record.promotion.outcome == "refused" and registry.champion(DOMAIN).version == other


def test_champion_moved_and_challenger_no_longer_blessed_is_refused_with_the_reason(judged, monkeypatch):
    from continuum import blessing

    first, batch_id = judged
    other = _another_version(batch_id)
    registry.promote(DOMAIN, other)
    monkeypatch.setattr(blessing, "bless", lambda spec, **kw: (False, ["accuracy worse than champion"]))
    outcome = pipeline.run_promotion(DOMAIN, batch_id)
    record = decision.load(DOMAIN, batch_id)
    assert outcome["promoted"] is False and record.promotion.outcome == "refused"
    assert record.promotion.reasons[0].startswith(f"champion moved from v{first.champion.version} to v{other}")
    assert "accuracy worse than champion" in record.promotion.reasons
    assert registry.roles(DOMAIN) == {"champion": other, "previous": first.champion.version}


def _another_version(batch_id: str) -> str:
    """Register one more version for another batch (a stand-in for a hand-made model)."""
    from continuum import specs, training

    spec = specs.get_domain(DOMAIN)
    frame = storage.get_frame(Keys(DOMAIN).validated(batch_id))
    train, holdout = training.split(frame, spec)
    result = training.train_and_register(
        spec, train, holdout, batch_id="00000000000000aa", dataset_uri="s3://x/y", tags={"role": "manual"}
    )
    pipeline._save_lineage(spec, result.version, train, [])
    return result.version


class _NaNModel:
    def __init__(self, model):
        self.classes_ = model.classes_

    def predict_proba(self, frame):
        import numpy as np

        return np.full((len(frame), len(self.classes_)), np.nan)


@pytest.mark.parametrize("fault", ["nan_scores", "load_fails"])
def test_shadow_refuses_a_challenger_that_cannot_serve(judged, monkeypatch, fault):
    first, batch_id = judged
    challenger = decision.load(DOMAIN, batch_id).challenger.version
    real = registry.load

    def load(name, number):
        model = real(name, number)
        if str(number) != challenger:
            return model
        if fault == "load_fails":
            raise OSError("artefact missing in S3")
        return _NaNModel(model)

    monkeypatch.setattr(registry, "load", load)
    outcome = pipeline.run_promotion(DOMAIN, batch_id)
    record = decision.load(DOMAIN, batch_id)
    assert outcome["promoted"] is False and record.promotion.outcome == "refused"
    expected = "non-finite score" if fault == "nan_scores" else "does not load"
    assert any(expected in r for r in record.promotion.reasons), record.promotion.reasons
    assert record.promotion.shadow.passed is False
    assert registry.champion(DOMAIN).version == first.champion.version


def test_score_shift_beyond_the_spec_refuses_promotion(judged, monkeypatch):
    from continuum import specs

    _, batch_id = judged
    spec = specs.get_domain(DOMAIN)
    strict = spec.model_copy(update={"blessing": spec.blessing.model_copy(update={"max_score_shift": 0.0})})
    monkeypatch.setattr(pipeline, "get_domain", lambda name: strict)
    pipeline.run_promotion(DOMAIN, batch_id)
    record = decision.load(DOMAIN, batch_id)
    assert record.promotion.outcome == "refused"
    assert any("exceeds blessing.max_score_shift" in r for r in record.promotion.reasons)


def test_failed_smoke_test_after_promotion_rolls_back_and_alerts(judged, monkeypatch):
    from continuum import scoring

    first, batch_id = judged
    before = registry.roles(DOMAIN)

    def broken(spec, model, sample):
        raise scoring.SmokeTestFailed("predict_proba returned NaN for 50 rows")

    monkeypatch.setattr(scoring, "smoke_test", broken)
    outcome = pipeline.run_promotion(DOMAIN, batch_id)
    record = decision.load(DOMAIN, batch_id)
    assert outcome["promoted"] is False and record.promotion.outcome == "rolled_back"
    assert registry.roles(DOMAIN) == before  # champion and previous exactly as before
    assert record.champion.version == first.champion.version
    alerts = [storage.get_json(k) for k in storage.list_keys(f"alerts/{DOMAIN}/")]
    assert any(a["batch_id"] == batch_id and "smoke test" in a["summary"] for a in alerts)


def test_ingest_run_resumes_a_batch_that_failed_in_training(loop, oncall, monkeypatch):
    """The train task fails in the real decide DAG (after its retries): the owner gets `task_failed`
    on Slack and the webhook with the run and log link; `ingest --run` then resumes the batch, and
    the hourly health DAG counts the failed run, then, an hour without failures later, sends `resolved` once."""
    from datetime import UTC, datetime, timedelta
    from urllib.parse import quote

    from airflow.dag_processing.dagbag import DagBag

    from continuum import cli, dagrun, training
    from continuum.settings import REPO_ROOT

    health = DagBag(dag_folder=str(REPO_ROOT / "dags" / "continuum_health.py")).dags["continuum_health"]
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert str(health.test(logical_date=hour).state) == "success"  # the failed-run counts before the failure
    loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=1))
    path = loop.write(loop.batch(DOMAIN, seed=3, faults=["covariate_drift"], drift=1.0))
    cli.ingest(DOMAIN, path, run=False)
    [batch_id] = landing.register_landed(DOMAIN)
    real_fit = training.fit
    monkeypatch.setattr(training, "fit", lambda *a: (_ for _ in ()).throw(ConnectionError("mlflow is down")))
    monkeypatch.setenv("CONTINUUM_RETRY_DELAY_SECONDS", "1")  # the retries, without waiting 30 s for them
    dagrun.reset()
    with pytest.raises(dagrun.DagRunFailed):
        dagrun.run(f"{DOMAIN}_decide")
    dagrun.reset()
    assert decision.load(DOMAIN, batch_id).steps == ["gate", "monitor"]
    assert batches.pending(DOMAIN) == [batch_id]
    [failed] = [h["body"]["alert"] for h in oncall.http.on("/hook") if h["body"]["alert"]["kind"] == "task_failed"]
    assert (failed["dag_id"], failed["task_id"], failed["owner"], failed["try_number"]) == (
        f"{DOMAIN}_decide", "train", "risk-team", 3
    )
    assert "mlflow is down" in failed["exception"] and failed["run_id"].startswith("manual__")
    assert f"/dags/{DOMAIN}_decide/runs/{quote(failed['run_id'])}/tasks/{failed['task_id']}" in failed["log_url"]
    [slack] = [p["body"]["text"] for p in oncall.http.on("/slack/oncall") if p["body"]["text"].startswith("[ERROR] task_failed")]
    assert f"log={failed['log_url']}" in slack

    monkeypatch.setattr(training, "fit", real_fit)  # MLflow is back
    record = loop.ingest(DOMAIN, path=path)  # the same file again, with --run
    assert record["batch_id"] == batch_id and record["finished"] is True
    assert record["challenger"] is not None and record["promoted"] is True
    assert batches.pending(DOMAIN) == []
    assert len(versions(DOMAIN)) == 2

    def sent(kind: str) -> list[dict]:
        hooks = [h["body"]["alert"] for h in oncall.http.on("/hook")]
        return [a for a in hooks if a["kind"] == kind and a["domain"] == DOMAIN]

    rerun = health.test(logical_date=hour + timedelta(minutes=20))  # the same hour: the failed run is new to it
    assert str(rerun.state) == "success"
    assert len(sent("task_failed")) == 1  # counted into the open alert, not sent again
    from continuum import alert_delivery

    [recorded] = alert_delivery.recorded(DOMAIN, kind="task_failed")
    assert recorded["count"] == 2
    later = health.test(logical_date=hour + timedelta(hours=1))  # an hour without failures
    assert str(later.state) == "success"
    assert [(a["facts"]["resolves"], a["run_id"]) for a in sent("resolved")] == [("task_failed", later.run_id)]
    assert str(health.test(logical_date=hour + timedelta(hours=1, minutes=10)).state) == "success"
    assert len(sent("resolved")) == 1


@pytest.mark.parametrize("count", [2, 5])
def test_batches_landed_together_are_decided_one_at_a_time_in_arrival_order(loop, monkeypatch, count):
    from continuum import dagrun

    monkeypatch.setattr(registry, "is_stale", lambda *a, **k: True)  # every batch asks for a retrain
    ids = []
    for seed in range(count):
        path = loop.write(loop.batch(DOMAIN, n=1500, seed=50 + seed))
        landing.land_file(DOMAIN, str(path), path.read_bytes())
    dagrun.run(f"{DOMAIN}_land")
    ids = batches.pending(DOMAIN)
    assert len(ids) == count
    for _ in range(count):
        dagrun.run(f"{DOMAIN}_decide")
    dagrun.run(f"{DOMAIN}_decide")  # nothing left: the run skips
    assert batches.pending(DOMAIN) == []

    records = [decision.load(DOMAIN, b) for b in ids]
    assert all(r.finished for r in records)
    champion = None  # walk the batches in arrival order: each was judged against the one before
    for record in records:
        assert (record.champion_before.version if record.champion_before else None) == champion
        if record.promoted:
            assert record.promotion.previous == champion or champion is None
            champion = record.challenger.version
        assert record.champion.version == champion
    versions_in_order = [r.challenger.version for r in records]
    assert versions_in_order == sorted(versions_in_order, key=int)  # trained in arrival order
    assert registry.champion(DOMAIN).version == champion


KILL_AFTER_REGISTERING = """
import os, signal, sys
from continuum import pipeline, training

real = training._log_model

def log_then_die(*args, **kwargs):
    info = real(*args, **kwargs)  # the version is registered; its tags and the record are not written
    os.kill(os.getpid(), signal.SIGKILL)

training._log_model = log_then_die
pipeline.run_training(sys.argv[1], sys.argv[2])
"""


def test_sigkill_of_the_training_process_ends_in_one_version_and_one_record(loop):
    import signal
    import subprocess
    import sys

    first = decide(DOMAIN, land(DOMAIN, loop.batch(DOMAIN, seed=1)))
    batch_id = land(DOMAIN, loop.batch(DOMAIN, seed=3, faults=["covariate_drift"], drift=1.0))
    decide(DOMAIN, batch_id, until="monitor")
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_REGISTERING, DOMAIN, batch_id], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    [orphan] = [v for v in versions(DOMAIN) if v != first.champion.version]
    assert not decision.load(DOMAIN, batch_id).done("train")

    pipeline.run_training(DOMAIN, batch_id)  # what Airflow's retry of the killed task does
    record = decide(DOMAIN, batch_id)  # and the rest of the run
    assert versions(DOMAIN) == sorted([first.champion.version, orphan], key=int)
    assert record.challenger.version == orphan and record.finished
    decisions = [k for k in storage.list_keys(f"batches/{DOMAIN}/") if k.endswith("/decision.json")]
    assert len(decisions) == 2  # one record per batch


def test_promote_retried_after_the_alias_moved_records_the_promotion_once(judged, monkeypatch):
    first, batch_id = judged
    real = pipeline._after_move
    monkeypatch.setattr(pipeline, "_after_move", lambda *a: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        pipeline.run_promotion(DOMAIN, batch_id)  # died right after moving `champion`
    challenger = decision.load(DOMAIN, batch_id).challenger.version
    assert registry.roles(DOMAIN) == {"champion": challenger, "previous": first.champion.version}
    monkeypatch.setattr(pipeline, "_after_move", real)
    outcome = pipeline.run_promotion(DOMAIN, batch_id)  # the retry
    record = decision.load(DOMAIN, batch_id)
    assert outcome["promoted"] is True and record.promotion.previous == first.champion.version
    assert registry.roles(DOMAIN) == {"champion": challenger, "previous": first.champion.version}
