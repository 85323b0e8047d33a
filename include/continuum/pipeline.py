"""The steps of a domain's loop, one function per DAG task, each keyed by batch id.

gate -> monitor -> train (challenger + blessing) -> promote (shadow, compare-and-set,
smoke test) -> score. The `<domain>_decide` DAG runs them for one batch at a time,
the oldest pending one (`next_pending`). Each step writes its part of the batch's
decision record and marks itself done there; a rerun of a done step returns what
the record says and changes nothing, and every side effect (model version, MLflow
run, S3 object, alias move) is keyed by the batch id, so a retried or cleared task
ends where an undisturbed run would. None of this imports Airflow.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from continuum import batches, decision, storage
from continuum.specs import DomainSpec, get_domain
from continuum.storage import Keys

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

REFERENCE_ROWS = 50_000  # the drift reference kept per model version (Evidently samples to this anyway)
SMOKE_ROWS = 50
MAX_REJUDGE = 3  # champion moves tolerated between judging and promoting before giving up


def next_pending(domain: str, among: list[str] | None = None) -> str | None:
    """The oldest batch still waiting for its decision (of `among`, when given), or None.

    A batch whose record is finished but whose queue marker survived (a crash
    between the two writes) is dequeued here and skipped.
    """
    while (batch_id := batches.next_batch(domain, among)) is not None:
        if not decision.load(domain, batch_id).finished:
            return batch_id
        batches.dequeue(domain, batch_id)
    return None


def claim_next(domain: str, holder: str, among: list[str] | None = None) -> str | None:
    """Take the domain's decision lease for `holder`, then the oldest pending batch (None: lease released).

    `lease.LeaseHeld` when another run is deciding this domain: nothing is picked, so
    the batch stays queued for whichever run holds the lease. A pick that fails (S3
    down) gives the lease back, so the next run need not wait for it to expire.
    """
    from continuum import lease

    lease.acquire(domain, holder)
    try:
        batch_id = next_pending(domain, among)
    except Exception:
        _release_quietly(domain, holder)
        raise
    if batch_id is None:
        lease.release(domain, holder)
        return None
    lease.acquire(domain, holder, batch_id)  # the lease names the batch, for whoever is refused
    log.info("event=batch_claimed domain=%s batch_id=%s holder=%s", domain, batch_id, holder)
    return batch_id


def _release_quietly(domain: str, holder: str) -> None:
    from continuum import lease

    try:
        lease.release(domain, holder)
    except Exception as exc:  # the pick's own error is the one to raise; the lease expires by itself
        log.warning("event=decision_lease_release_failed domain=%s holder=%s error=%s", domain, holder, type(exc).__name__)


def finish(record: decision.DecisionRecord) -> None:
    """The batch is decided: save the final record, attach it to MLflow, and only then leave the queue."""
    record.finished = True
    record.save()
    attach_decision(record)
    batches.dequeue(record.domain, record.batch_id)
    log.info("event=batch_finished domain=%s batch_id=%s promoted=%s", record.domain, record.batch_id, record.promoted)


# --- scheduled retrains (`retrain_on_schedule`) ----------------------------------------------------
#
# When the champion is older than the spec's `schedule` allows and nothing new arrives, the
# hourly health check asks for a retrain: a decision of its own, queued like a batch under
# an id of its own, that `<domain>_decide` performs with the same steps. It learns from the
# labelled batches that landed after the champion was trained and are not in its window;
# with none, there is nothing new to learn from and its record says `waiting_for_labels`
# (the next labelled batch carries the request, as for a retrain asked for on unlabelled data).


def scheduled_retrain(domain: str, batch_id: str) -> dict | None:
    """The health check's retrain request queued under `batch_id`, or None for an ordinary batch."""
    key = Keys(domain).scheduled_retrain(batch_id)
    return storage.get_json(key) if storage.exists(key) else None


def new_labelled_batches(spec: DomainSpec, champion) -> list[str]:
    """Labelled batches, decided already, that landed after `champion` was trained and are not in its window.

    A batch still waiting for (or in the middle of) its own decision is left to that decision.
    """
    keys = Keys(spec.name)
    window = storage.get_json(keys.window(champion.version)) if storage.exists(keys.window(champion.version)) else []
    found = []
    for key in storage.list_keys(f"batches/{spec.name}/"):
        if not key.endswith("/manifest.json"):
            continue
        manifest = storage.get_json(key)
        batch_id = manifest["batch_id"]
        landed = datetime.fromisoformat(manifest["landed_at"])
        if batch_id in window or landed <= champion.created_at or not storage.exists(keys.validated(batch_id)):
            continue
        if not decision.load(spec.name, batch_id).finished:
            continue
        if _labelled(spec, storage.get_frame(keys.validated(batch_id))):
            found.append((manifest["landed_at"], batch_id))
    return [batch_id for _, batch_id in sorted(found)]


def request_scheduled_retrain(spec: DomainSpec, champion, requested_at: datetime) -> dict:
    """Queue a retrain of the stale `champion` for `<domain>_decide`; idempotent per champion and data.

    The request's id is the hash of the champion and of the batches it would learn from:
    while neither changes, asking again (every hour the champion stays stale) queues nothing new.
    """
    sources = new_labelled_batches(spec, champion)
    identity = json.dumps({"domain": spec.name, "champion": champion.version, "sources": sources}, sort_keys=True)
    retrain_id = storage.batch_id_for(identity.encode())
    key = Keys(spec.name).scheduled_retrain(retrain_id)
    request = storage.get_json(key) if storage.exists(key) else None
    if request is None:
        queued_at = requested_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        request = {
            "retrain_id": retrain_id,
            "reason": "schedule",
            "champion_version": champion.version,
            "sources": sources,
            "requested_at": requested_at.isoformat(timespec="seconds"),
            "queued_at": queued_at,
        }
        storage.put_json(key, request)  # before the marker: a queued retrain always has its request
    if not decision.load(spec.name, retrain_id).finished:
        batches.enqueue(spec.name, retrain_id, request["queued_at"])  # the same marker on every retry
    log.info(
        "event=retrain_requested domain=%s retrain_id=%s champion=%s sources=%s",
        spec.name,
        retrain_id,
        champion.version,
        ",".join(sources) or "none",
    )
    return request


def _gate_scheduled_retrain(spec: DomainSpec, record: decision.DecisionRecord, request: dict) -> dict:
    """A scheduled retrain's data is batches the gate passed already: join them under the retrain's id."""
    import pandas as pd

    keys = Keys(spec.name)
    sources = request["sources"]
    if sources and not storage.exists(keys.validated(record.batch_id)):
        frames = [storage.get_frame(keys.validated(b)) for b in sources]
        storage.put_frame(keys.validated(record.batch_id), pd.concat(frames, ignore_index=True))
    reason = f"scheduled retrain of v{request['champion_version']} on batches already validated: {', '.join(sources) or 'none'}"
    record.validation = decision.Validation(success=True, reason=reason)
    record.extra["scheduled_retrain"] = request
    record.mark("gate")
    record.save()
    return {"success": True, "quarantined": False, "failed": [], "reason": reason}


def _monitor_without_labels(domain: str, record: decision.DecisionRecord) -> dict:
    """No labelled batch since the champion was trained: nothing new to learn from, so wait for one."""
    from continuum import registry

    champion = registry.champion(domain)
    record.champion = _model_version(champion) if champion is not None else None
    record.retrain = decision.Retrain(triggered=True, reasons=["schedule"], waiting_for_labels=True)
    _wait_for_labels(domain, record.batch_id, ["schedule"])
    record.mark("monitor")
    record.save()
    log.info("event=monitor domain=%s batch_id=%s reasons=schedule waiting_for_labels=True", domain, record.batch_id)
    return _monitor_outcome(record)


def run_gate(domain: str, batch_id: str, where: dict | None = None) -> dict:
    """Validation gate for one batch; alerts the owner when it is quarantined.

    `where` is the deciding task (`alerts.task_location(context)`: DAG, task, run, try, log
    link), carried by the alerts this decision raises.
    """
    from continuum import alerts, validation

    spec = get_domain(domain)
    batches.check_batch_id(batch_id)
    if (request := scheduled_retrain(domain, batch_id)) is not None:
        return _gate_scheduled_retrain(spec, decision.load(domain, batch_id), request)
    outcome = validation.gate(spec, batch_id)  # idempotent: returns the stored outcome when gated before
    record = decision.load(domain, batch_id)
    record.spec_hash = spec.content_hash()
    record.validation = decision.Validation(
        success=outcome["success"],
        failed=outcome["failed"],
        warnings=outcome.get("warnings", []),
        report=storage.uri(outcome["report_key"]) if outcome.get("report_key") else None,
        reason=outcome.get("reason"),
    )
    record.quarantined = outcome["quarantined"]
    record.mark("gate")
    if outcome["quarantined"]:
        from continuum import registry

        champion = registry.champion(domain)  # untouched by this batch; recorded for the reader
        record.champion = _model_version(champion) if champion is not None else None
        finish(record)
        alerts.after_decision(spec, record, **(where or {}))  # keyed by the batch id: a retry pages nobody twice
    else:
        record.save()
    log.info(
        "event=gate domain=%s batch_id=%s success=%s failed=%d",
        domain,
        batch_id,
        outcome["success"],
        len(outcome["failed"]),
    )
    return outcome


def _model_version(ref) -> decision.ModelVersion:
    from continuum import model_card

    card = ref.tags.get(model_card.TAG)
    return decision.ModelVersion(version=ref.version, metrics=ref.metrics, run_id=ref.run_id, card=card)


def _labelled(spec: DomainSpec, frame: pd.DataFrame) -> bool:
    target = spec.data.target
    return target in frame.columns and len(frame) > 0 and bool(frame[target].notna().all())


def _save_lineage(spec: DomainSpec, version: str, train: pd.DataFrame, window: list[str]) -> None:
    """Keep what a version learnt from: a reference sample (drift baseline) and its batch window."""
    keys = Keys(spec.name)
    sample = train.sample(n=min(len(train), REFERENCE_ROWS), random_state=spec.training.seed)
    storage.put_frame(keys.reference(version), sample.reset_index(drop=True))
    drift_profile(spec, version, sample)
    storage.put_json(keys.window(version), window)


def drift_profile(spec: DomainSpec, version: str, reference: pd.DataFrame) -> dict:
    """The drift statistics of a version's reference: made once per version, then read back.

    A version trained before profiles existed gets one at its first monitored batch. A
    stored profile that lacks a compared column (the spec has changed since) is rebuilt in
    memory for this batch and left as it is.
    """
    from continuum import drift_stats, monitoring

    key = Keys(spec.name).drift_profile(version)
    numerical, categorical = (
        [c for c in columns if c in reference.columns] for columns in monitoring.drift_columns(spec)
    )
    if storage.exists(key):
        stored = drift_stats.from_bytes(storage.get_bytes(key))
        if {*numerical, *categorical} <= set(stored):
            return stored
        log.info("event=drift_profile_stale domain=%s version=%s", spec.name, version)
        return drift_stats.profile(reference, numerical, categorical)
    built = drift_stats.profile(reference, numerical, categorical)
    storage.put_bytes(key, drift_stats.to_bytes(built), "application/octet-stream")
    return built


def _register_baseline(spec: DomainSpec, batch_id: str, frame: pd.DataFrame):
    """Register the spec's rules baseline as the first champion ("DevOps phase"), so ML must beat it.

    Needs a labelled frame (the rules learn the classes from it). Keyed by batch id:
    a retry finds the version registered before and promotes that one.
    """
    from continuum import baselines, model_card, registry, training

    result = training.registered(spec, batch_id, "baseline")
    if result is None:
        result = training.train_and_register(
            spec,
            frame,
            frame,
            batch_id=batch_id,
            dataset_uri=storage.uri(Keys(spec.name).validated(batch_id)),
            tags={"role": "baseline"},
            pipeline=baselines.fit_baseline(spec, frame),
            params={"baseline": spec.baseline.estimator},
        )
    _save_lineage(spec, result.version, frame, window=[])
    # Before the move: a retry after a crash in between finds no champion and comes back here.
    model_card.publish(spec, result.version)  # nobody judged it: its card says so
    registry.promote(spec.name, result.version, expected=None)
    log.info("event=baseline_registered domain=%s version=%s", spec.name, result.version)
    return registry.champion(spec.name)


def _monitor_outcome(record: decision.DecisionRecord) -> dict:
    retrain = record.retrain
    return {
        "batch_id": record.batch_id,
        "retrain": retrain.triggered and not retrain.waiting_for_labels,
        "reasons": list(retrain.reasons),
        "waiting_for_labels": retrain.waiting_for_labels,
    }


def _retrain_request(domain: str) -> dict:
    key = Keys(domain).retrain_request()
    return storage.get_json(key) if storage.exists(key) else {"batch_ids": [], "reasons": []}


def _wait_for_labels(domain: str, batch_id: str, reasons: list[str]) -> None:
    """Keep the retrain asked for on unlabelled `batch_id` until a labelled batch arrives (idempotent)."""
    request = _retrain_request(domain)
    if batch_id not in request["batch_ids"]:
        request["batch_ids"].append(batch_id)
    request["reasons"] = [*request["reasons"], *(r for r in reasons if r not in request["reasons"])]
    storage.put_json(Keys(domain).retrain_request(), request)


def _labels_arrived(domain: str, served: list[str]) -> None:
    """A challenger was trained for the requests of `served`: drop them (others that came later stay)."""
    request = _retrain_request(domain)
    left = [b for b in request["batch_ids"] if b not in served]
    if left == request["batch_ids"]:
        return
    key = Keys(domain).retrain_request()
    if left:
        storage.put_json(key, {**request, "batch_ids": left})
    else:
        storage.delete(key)


def run_monitor(domain: str, batch_id: str) -> dict:
    """Drift against the champion's reference, its metric on labelled data, and the retrain decision."""
    from continuum import monitoring, registry, tracking

    spec = get_domain(domain)
    keys = Keys(domain)
    record = decision.load(domain, batch_id)
    if record.done("monitor"):
        return _monitor_outcome(record)
    scheduled = scheduled_retrain(domain, batch_id)
    if scheduled is not None and not scheduled["sources"]:
        return _monitor_without_labels(domain, record)
    frame = storage.get_frame(keys.validated(batch_id))
    labelled = _labelled(spec, frame)
    champion = registry.champion(domain)
    # A champion this very batch registered (an earlier attempt got that far) is still "no champion".
    own_baseline = champion is not None and champion.tags.get("batch_id") == batch_id
    record.performance = decision.Performance(
        metric=spec.monitoring.primary_metric, value=None, floor=spec.monitoring.floor
    )
    reasons: list[str] = []
    if champion is None or own_baseline:
        reasons.append("no_champion")
        if champion is None and spec.baseline is not None and labelled:
            # The rules system becomes the first champion; the challenger trained next must beat it.
            champion = _register_baseline(spec, batch_id, frame)
        if champion is not None:
            record.champion = _model_version(champion)
            model = registry.load(domain, champion.version)
            record.performance.value = monitoring.champion_metric(spec, model, frame)
    else:
        reference = storage.get_frame(keys.reference(champion.version))
        profile = drift_profile(spec, champion.version, reference)
        drift, html = monitoring.detect_drift(spec, reference, frame, profile=profile)
        storage.put_bytes(keys.drift_report(batch_id), html.encode(), "text/html")
        record.drift = decision.Drift(
            detected=drift.detected,
            share=drift.share,
            columns=drift.columns,
            report=storage.uri(keys.drift_report(batch_id)),
            not_compared=drift.not_compared,
        )
        model = registry.load(domain, champion.version)
        record.performance.value = monitoring.champion_metric(spec, model, frame)
        record.champion = _model_version(champion)
        if drift.detected:
            reasons.append("drift")
        if monitoring.below_floor(spec, record.performance.value):
            reasons.append("performance")
        if registry.is_stale(domain, spec.schedule):
            reasons.append("schedule")
        tracking.log_to_batch_run(
            domain,
            batch_id,
            metrics={"drift_share": drift.share, f"champion_{spec.monitoring.primary_metric}": record.performance.value},
            texts={"drift.html": html},
        )
    if scheduled is not None and "schedule" not in reasons:
        reasons.append("schedule")  # the health check found the champion stale (on its clock)
    record.retrain = decision.Retrain(triggered=bool(reasons), reasons=reasons)
    if labelled:
        waiting = _retrain_request(domain)
        if waiting["batch_ids"]:  # labels have arrived for a retrain asked for earlier
            record.retrain.reasons += [r for r in waiting["reasons"] if r not in reasons]
            record.retrain.carried_from = list(waiting["batch_ids"])
            record.retrain.triggered = True
    elif reasons:
        # Nothing new to learn from: a challenger split from the champion's own window would be
        # judged out-of-sample against a champion scored in-sample. Wait for labelled data.
        record.retrain.waiting_for_labels = True
        _wait_for_labels(domain, batch_id, reasons)
    record.mark("monitor")
    record.save()
    log.info(
        "event=monitor domain=%s batch_id=%s reasons=%s waiting_for_labels=%s",
        domain,
        batch_id,
        ",".join(record.retrain.reasons) or "none",
        record.retrain.waiting_for_labels,
    )
    return _monitor_outcome(record)


def _holdout(spec: DomainSpec, frame: pd.DataFrame) -> tuple:
    """(train part, holdout) of a labelled batch: deterministic, so a re-judge sees the same holdout."""
    from continuum import training

    return training.split(frame, spec, test_size=spec.training.holdout_fraction, seed=spec.training.seed)


def _training_data(spec: DomainSpec, batch_id: str, frame: pd.DataFrame, champion) -> tuple:
    """(train, holdout, window) for a labelled batch: the champion's window plus the new batch.

    The holdout comes from the new batch only, so challenger and champion are judged
    on the world as it is now and neither has seen it.
    """
    from continuum.validation import concat_batches

    keys = Keys(spec.name)
    window: list[str] = []
    if champion is not None and storage.exists(keys.window(champion.version)):
        window = [b for b in storage.get_json(keys.window(champion.version)) if b != batch_id]
    window = window[-(spec.training.window_batches - 1) :] if spec.training.window_batches > 1 else []
    new_train, holdout = _holdout(spec, frame)
    # Older batches may predate a column the spec added: it is null there (the pipeline imputes it).
    train = concat_batches(spec, [*(storage.get_frame(keys.validated(b)) for b in window), new_train])
    return train, holdout, [*window, batch_id]


def _train_outcome(record: decision.DecisionRecord) -> dict:
    challenger = record.challenger
    if challenger is None:
        return {"batch_id": record.batch_id, "trained": False}
    return {"batch_id": record.batch_id, "trained": True, "version": challenger.version, "blessed": challenger.blessed}


def _ranking(spec: DomainSpec, record: decision.DecisionRecord, models: dict, holdout, train) -> None:
    """Recommendations domains: Evidently's ranking metrics of each model on the holdout, and its report.

    The challenger's are logged to its run (`ranking.<name>`, `ranking.html`), so its model card shows them."""
    import mlflow

    from continuum import metrics, ranking

    record.extra.pop("ranking", None)
    if not ranking.applies(spec, holdout):
        return
    key = Keys(spec.name).ranking_report(record.batch_id)
    result: dict = {"report": storage.uri(key)}
    html = ""
    for role, model in models.items():
        values, report = ranking.evaluate(spec, holdout, metrics.positive_scores(spec, model, holdout), train)
        result[role], html = values, html or report  # the report shows the challenger (first)
    storage.put_bytes(key, html.encode(), "text/html")
    client = mlflow.MlflowClient()
    for name, value in result["challenger"].items():
        client.log_metric(record.challenger.run_id, f"ranking.{name}", value)
    client.log_text(record.challenger.run_id, html, "ranking.html")
    record.extra["ranking"] = result


def _judge(spec: DomainSpec, record: decision.DecisionRecord, challenger_model, champion, holdout, train=None) -> None:
    """Bless the challenger against `champion` (or none) on `holdout`; the record names who it was judged against.

    Input columns with permutation importance <= 0 (logged at training) are flagged, not refused."""
    from continuum import blessing, importance, registry

    champion_model = registry.load(spec.name, champion.version) if champion is not None else None
    comparison = blessing.compare_on_holdout(spec, challenger_model, champion_model, holdout)
    comparison["baselines"] = record.baselines.metrics if record.baselines else None
    blessed, why_not = blessing.bless(spec, **comparison)
    if record.baselines is not None:
        record.baselines.best, record.baselines.gain = blessing.best_baseline(
            spec, comparison["challenger"], record.baselines.metrics
        )
    record.champion_before = _model_version(champion) if champion is not None else None
    record.challenger.metrics = comparison["challenger"]
    record.challenger.blessed, record.challenger.why_not = blessed, why_not
    record.challenger.flags = importance.flags(importance.load(record.challenger.run_id))
    record.extra.pop("champion_on_holdout", None)
    if comparison["champion"] is not None:
        record.extra["champion_on_holdout"] = comparison["champion"]
    if train is not None:  # a re-judge after the champion moved keeps the ranking measured at training
        models = {"challenger": challenger_model, **({"champion": champion_model} if champion_model is not None else {})}
        _ranking(spec, record, models, holdout, train)
    _record_blessing(spec, record.challenger, {**comparison, "flags": record.challenger.flags}, blessed, why_not)


def run_training(domain: str, batch_id: str) -> dict:
    """Train, register and judge a challenger when the decision asked for one (once per batch)."""
    from continuum import registry, training

    spec = get_domain(domain)
    keys = Keys(domain)
    record = decision.load(domain, batch_id)
    if record.done("train"):
        return _train_outcome(record)
    if not record.retrain.triggered or record.retrain.waiting_for_labels:
        record.mark("train")
        record.save()
        return _train_outcome(record)
    champion = registry.champion(domain)
    frame = storage.get_frame(keys.validated(batch_id))
    train, holdout, window = _training_data(spec, batch_id, frame, champion)
    result = training.registered(spec, batch_id, "challenger")
    if result is None:
        pipeline, search = training.fit_challenger(spec, train)  # tuned on the window when the spec says
        result = training.train_and_register(
            spec,
            train,
            holdout,
            batch_id=batch_id,
            dataset_uri=storage.uri(keys.validated(batch_id)),
            tags={"role": "challenger", "reasons": ",".join(record.retrain.reasons)},
            pipeline=pipeline,
            params={"window": ",".join(window)},
            search=search,
        )
    else:  # an earlier attempt registered it: judge that very artefact
        pipeline = registry.load(domain, result.version)
    _save_lineage(spec, result.version, train, window)
    record.challenger = decision.Challenger(
        version=result.version, run_id=result.run_id, params=training.chosen_params(spec, pipeline)
    )
    record.baselines = _baselines(spec, train, holdout)
    _judge(spec, record, pipeline, champion, holdout, train)
    record.mark("train")
    record.save()
    _labels_arrived(domain, record.retrain.carried_from)
    log.info(
        "event=challenger domain=%s batch_id=%s version=%s champion_before=%s blessed=%s why_not=%s",
        domain,
        batch_id,
        result.version,
        champion.version if champion else None,
        record.challenger.blessed,
        "; ".join(record.challenger.why_not),
    )
    return _train_outcome(record)


def _baselines(spec: DomainSpec, train: pd.DataFrame, holdout: pd.DataFrame) -> decision.Baselines:
    """The simple models fitted on the challenger's window and scored on its holdout (judged in `_judge`)."""
    from continuum import baselines, metrics

    fitted = baselines.reference_models(spec, train)
    return decision.Baselines(
        metrics={name: metrics.evaluate(spec, model, holdout) for name, model in fitted.items()},
        required=spec.blessing.min_gain_over_baseline,
    )


def _record_blessing(spec: DomainSpec, challenger: decision.Challenger, comparison: dict, blessed: bool, why_not: list[str]) -> None:
    """Put the verdict where MLflow users look: the challenger's run and its model version."""
    import math

    import mlflow

    client = mlflow.MlflowClient()
    for name, value in (comparison["champion"] or {}).items():
        if value is not None and not math.isnan(value):
            client.log_metric(challenger.run_id, f"champion_{name}", float(value))
    for baseline, values in (comparison.get("baselines") or {}).items():
        for name, value in values.items():
            if value is not None and not math.isnan(value):
                client.log_metric(challenger.run_id, f"baseline_{baseline}_{name}", float(value))
    client.log_text(challenger.run_id, json.dumps(comparison, indent=2, default=str), "blessing.json")
    client.set_tag(challenger.run_id, "blessed", str(blessed).lower())
    client.set_model_version_tag(spec.name, challenger.version, "blessed", str(blessed).lower())
    if why_not:
        client.set_model_version_tag(spec.name, challenger.version, "why_not", "; ".join(why_not)[:5000])


def _shadow(spec: DomainSpec, record: decision.DecisionRecord, frame: pd.DataFrame) -> decision.Shadow:
    """Load the registered challenger exactly as scoring will (`models:/<domain>/<version>`) and score the batch."""
    from continuum import registry, scoring

    version = record.challenger.version
    try:
        candidate = registry.load(spec.name, version)
    except Exception as exc:  # an artefact that does not load must not serve; the reason is the finding
        reason = f"registered version {version} does not load ({type(exc).__name__}: {str(exc)[:300]})"
        return decision.Shadow(passed=False, reasons=[reason], max_score_shift=spec.blessing.max_score_shift)
    before = record.champion_before
    # A rules baseline scores on another scale by design: only a trained champion bounds the shift.
    trained_before = before is not None and registry.version(spec.name, before.version).tags.get("role") != "baseline"
    champion = registry.load(spec.name, before.version) if trained_before else None
    reasons, shift = scoring.shadow_check(spec, candidate, champion, frame)
    return decision.Shadow(
        passed=not reasons, reasons=reasons, score_shift=shift, max_score_shift=spec.blessing.max_score_shift
    )


def _rollback_alert(spec: DomainSpec, batch_id: str, version: str, restored: str | None, error: str):
    from continuum import alerts

    # `task_failed` at critical severity: the promote step did not achieve what it set out to do,
    # and the owner must look at the version that could not serve (the champion is already restored).
    return alerts.Alert(
        kind="task_failed",
        summary=f"v{version} failed its smoke test after promotion; champion restored to v{restored}",
        severity="critical",
        domain=spec.name,
        dag_id=f"{spec.name}_decide",
        task_id="promote",
        run_id=alerts.UNKNOWN,
        batch_id=batch_id,
        owner=spec.owner,
        exception=error[:300],
        facts={"rolled_back": version, "restored": restored},
        hint=alerts.runbook_hint("promot", spec.name, batch_id),
    )


def _smoke_after_promotion(spec: DomainSpec, version: str) -> str | None:
    """Load `models:/<domain>@champion` as serving does and smoke-test it; the failure text, or None."""
    from continuum import registry, scoring

    sample = storage.get_frame(Keys(spec.name).reference(version)).head(SMOKE_ROWS)
    try:
        scoring.smoke_test(spec, registry.load_champion(spec.name), sample)
    except Exception as exc:  # a champion that cannot serve is rolled back, whatever broke
        return f"{type(exc).__name__}: {exc}"
    return None


def _after_move(
    spec: DomainSpec, record: decision.DecisionRecord, before: dict, shadow, reasons: list[str]
) -> decision.Promotion:
    """`champion` is the challenger now: smoke-test it as serving loads it; put `before` back if it fails."""
    from continuum import alerts, registry

    version = record.challenger.version
    failure = _smoke_after_promotion(spec, version)
    if failure is None:
        return decision.Promotion(outcome="promoted", reasons=reasons, shadow=shadow, previous=before["champion"])
    registry.restore(spec.name, champion=before["champion"], previous=before["previous"], rolled_back=version)
    alerts.deliver(_rollback_alert(spec, record.batch_id, version, before["champion"], failure))
    reasons = [*reasons, f"smoke test after promotion failed: {failure}"]
    return decision.Promotion(outcome="rolled_back", reasons=reasons, shadow=shadow)


def _promote_blessed(spec: DomainSpec, record: decision.DecisionRecord) -> decision.Promotion:
    """Shadow, then compare-and-set `champion` against `champion_before`, then smoke-test (rollback on failure).

    A champion that moved since the challenger was judged (a manual rollback or
    promote) makes the challenger be judged again against the new one; it never
    wins silently. The roles before the move are saved in the record first, so a
    retry after a crash right after the move can still smoke-test and roll back.
    """
    from continuum import registry

    domain, version = spec.name, record.challenger.version
    frame = storage.get_frame(Keys(domain).validated(record.batch_id))
    reasons: list[str] = []
    for _ in range(MAX_REJUDGE):
        expected = record.champion_before.version if record.champion_before else None
        roles = registry.roles(domain)
        if roles["champion"] == version and "roles_before_promotion" in record.extra:
            # An earlier attempt moved the alias and died before recording it: check, then carry on.
            before = record.extra["roles_before_promotion"]
            if roles["previous"] != (before["champion"] or before["previous"]):
                raise registry.RegistryError(
                    f"{domain}: champion is v{version} but previous is v{roles['previous']}, expected "
                    f"v{before['champion']}; set the previous alias in MLflow, then clear the task"
                )
            return _after_move(spec, record, before, None, reasons)
        if roles["champion"] != expected:
            reasons.append(f"champion moved from v{expected} to v{roles['champion']} after judging; judged again")
            _judge(spec, record, registry.load(domain, version), registry.champion(domain), _holdout(spec, frame)[1])
            if not record.challenger.blessed:
                return decision.Promotion(outcome="refused", reasons=[*reasons, *record.challenger.why_not])
            continue
        shadow = _shadow(spec, record, frame)
        if not shadow.passed:
            return decision.Promotion(outcome="refused", reasons=[*reasons, *shadow.reasons], shadow=shadow)
        record.extra["roles_before_promotion"] = roles
        record.save()
        try:
            registry.promote(domain, version, expected=expected)
        except registry.ChampionMoved:
            continue
        return _after_move(spec, record, roles, shadow, reasons)
    return decision.Promotion(outcome="refused", reasons=[*reasons, f"champion kept moving; gave up after {MAX_REJUDGE} judgements"])


def run_promotion(domain: str, batch_id: str, where: dict | None = None) -> dict:
    """A blessed challenger that passes its shadow run becomes champion (the old one keeps `previous`).

    `where` is the deciding task, as for `run_gate`; its alerts carry it.
    """
    from continuum import alerts, approval, model_card, registry

    spec = get_domain(domain)
    record = decision.load(domain, batch_id)
    if not record.done("promote"):
        challenger = record.challenger
        if challenger is None:
            record.promotion = decision.Promotion(outcome="no_challenger")
        elif not challenger.blessed:
            record.promotion = decision.Promotion(outcome="not_blessed", reasons=list(challenger.why_not))
        elif (refused := approval.refusal(spec, record)) is not None:
            record.promotion = decision.Promotion(outcome="not_approved", reasons=[refused])
        else:
            record.promotion = _promote_blessed(spec, record)
        record.promoted = record.promotion.outcome == "promoted"
        if challenger is not None:  # its card says what was decided and the champion it replaced
            challenger.card = model_card.publish(spec, challenger.version, record)
        champion = registry.champion(domain)
        record.champion = _model_version(champion) if champion is not None else None
        record.mark("promote")
        record.save()
        alerts.after_decision(spec, record, **(where or {}))  # below floor, rejections in a row, or `resolved`
        log.info(
            "event=promotion domain=%s batch_id=%s outcome=%s champion=%s reasons=%s",
            domain,
            batch_id,
            record.promotion.outcome,
            record.champion.version if record.champion else None,
            "; ".join(record.promotion.reasons),
        )
    return {
        "batch_id": batch_id,
        "promoted": record.promoted,
        "outcome": record.promotion.outcome,
        "champion": record.champion.version if record.champion else None,
    }


def run_scoring(domain: str, batch_id: str, where: dict | None = None) -> dict:
    """Score the batch with the champion after a smoke test, then finish the batch.

    `where` is the scoring task, as for `run_gate`; an `estimated_drop` alert carries it.
    """
    from continuum import performance_estimate, registry, scoring

    spec = get_domain(domain)
    keys = Keys(domain)
    record = decision.load(domain, batch_id)
    if not record.done("score"):
        champion = registry.champion(domain)
        if scheduled_retrain(domain, batch_id) is not None:
            record.extra["scoring"] = "skipped: a scheduled retrain learns from batches already scored"
        elif champion is None:
            record.extra["scoring"] = "skipped: no champion to score with"
        else:
            model = registry.load(domain, champion.version)  # the version read, not whatever the alias says later
            frame = storage.get_frame(keys.validated(batch_id))
            reference = storage.get_frame(keys.reference(champion.version))
            scoring.smoke_test(spec, model, reference.head(SMOKE_ROWS))
            scores = scoring.score(spec, model, frame, reference=reference)
            scoring.check_scores(spec, scores, where=f" batch {batch_id} (champion v{champion.version})")
            storage.put_frame(keys.scores(batch_id), scores)
            record.scores = storage.uri(keys.scores(batch_id))
            record.score_summary = scoring.summarize(spec, scores)
            log.info(
                "event=scored domain=%s batch_id=%s version=%s rows=%d %s",
                domain,
                batch_id,
                champion.version,
                len(scores),
                " ".join(f"mean_{c}={v['mean']:.4g}" for c, v in record.score_summary.columns.items()),
            )
            record.champion = _model_version(champion)  # the version that scored: late labels are judged against it
            performance_estimate.after_scoring(spec, record, model, frame, where)  # unlabelled: CBPE estimate, may warn
        record.mark("score")
    finish(record)
    return {"batch_id": batch_id, "scores": record.scores}


def attach_decision(record: decision.DecisionRecord) -> None:
    """The final record goes to the batch's MLflow run too (and to the challenger's, when there is one)."""
    import mlflow

    from continuum import tracking

    text = json.dumps(record.model_dump(mode="json"), indent=2)
    tracking.log_to_batch_run(record.domain, record.batch_id, texts={"decision.json": text})
    if record.challenger is not None and record.challenger.run_id:
        mlflow.MlflowClient().log_text(record.challenger.run_id, text, "decision.json")
