"""The steps of a domain's loop, one function per DAG task, each keyed by batch id.

gate -> monitor -> train (challenger + blessing) -> promote -> score. Each step
composes the single-purpose modules, writes its part of the batch's decision
record, and returns a small JSON-safe dict for XCom. Rerunning a step redoes the
same work on the same keys. None of this imports Airflow.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from continuum import decision, storage
from continuum.specs import DomainSpec, get_domain
from continuum.storage import Keys

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

REFERENCE_ROWS = 50_000  # the drift reference kept per model version (Evidently samples to this anyway)


def run_gate(domain: str, batch_id: str) -> dict:
    """Validation gate for one batch; alerts the owner when it is quarantined."""
    from continuum import alerts, validation

    spec = get_domain(domain)
    outcome = validation.gate(spec, batch_id)
    record = decision.load(domain, batch_id)
    record.validation = decision.Validation(
        success=outcome["success"],
        failed=outcome["failed"],
        warnings=outcome.get("warnings", []),
        report=storage.uri(outcome["report_key"]) if outcome.get("report_key") else None,
        reason=outcome.get("reason"),
    )
    record.quarantined = outcome["quarantined"]
    if outcome["quarantined"]:
        from continuum import registry

        champion = registry.champion(domain)  # untouched by this batch; recorded for the reader
        record.champion = _model_version(champion) if champion is not None else None
    record.save()
    if outcome["quarantined"]:
        attach_decision(record)
        alerts.deliver(alerts.quarantine_alert(spec, batch_id, outcome))
    log.info(
        "event=gate domain=%s batch_id=%s success=%s failed=%d",
        domain,
        batch_id,
        outcome["success"],
        len(outcome["failed"]),
    )
    return outcome


def _model_version(ref) -> decision.ModelVersion:
    return decision.ModelVersion(version=ref.version, metrics=ref.metrics, run_id=ref.run_id)


def _labelled(spec: DomainSpec, frame: pd.DataFrame) -> bool:
    target = spec.data.target
    return target in frame.columns and len(frame) > 0 and bool(frame[target].notna().all())


def _save_lineage(spec: DomainSpec, version: str, train: pd.DataFrame, window: list[str]) -> None:
    """Keep what a version learnt from: a reference sample (drift baseline) and its batch window."""
    keys = Keys(spec.name)
    sample = train.sample(n=min(len(train), REFERENCE_ROWS), random_state=spec.training.seed)
    storage.put_frame(keys.reference(version), sample.reset_index(drop=True))
    storage.put_json(keys.window(version), window)


def _register_baseline(spec: DomainSpec, batch_id: str, frame: pd.DataFrame):
    """Register the spec's rules baseline as the first champion ("DevOps phase"), so ML must beat it."""
    from continuum import baselines, registry, training

    pipeline = baselines.build_baseline_pipeline(spec)
    if _labelled(spec, frame):
        pipeline.fit(training.features(spec, frame), frame[spec.data.target])
    result = training.train_and_register(
        spec,
        frame,
        frame,
        batch_id=batch_id,
        dataset_uri=storage.uri(Keys(spec.name).validated(batch_id)),
        tags={"role": "baseline"},
        pipeline=pipeline,
        params={"baseline": spec.baseline.estimator},
    )
    _save_lineage(spec, result.version, frame, window=[])
    registry.promote(spec.name, result.version)
    log.info("event=baseline_registered domain=%s version=%s", spec.name, result.version)
    return registry.champion(spec.name)


def run_monitor(domain: str, batch_id: str) -> dict:
    """Drift against the champion's reference, its metric on labelled data, and the retrain decision."""
    from continuum import monitoring, registry, tracking

    spec = get_domain(domain)
    keys = Keys(domain)
    frame = storage.get_frame(keys.validated(batch_id))
    record = decision.load(domain, batch_id)
    champion = registry.champion(domain)
    record.performance = decision.Performance(
        metric=spec.monitoring.primary_metric, value=None, floor=spec.monitoring.floor
    )
    reasons: list[str] = []
    if champion is None:
        reasons.append("no_champion")
        if spec.baseline is not None:
            # The rules system becomes the first champion; the challenger trained next must beat it.
            champion = _register_baseline(spec, batch_id, frame)
            record.champion = _model_version(champion)
            record.performance.value = monitoring.champion_metric(spec, registry.load_champion(domain), frame)
    else:
        drift, html = monitoring.detect_drift(spec, storage.get_frame(keys.reference(champion.version)), frame)
        storage.put_bytes(keys.drift_report(batch_id), html.encode(), "text/html")
        record.drift = decision.Drift(
            detected=drift.detected,
            share=drift.share,
            columns=drift.columns,
            report=storage.uri(keys.drift_report(batch_id)),
        )
        record.performance.value = monitoring.champion_metric(spec, registry.load_champion(domain), frame)
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
    record.retrain = decision.Retrain(triggered=bool(reasons), reasons=reasons)
    record.save()
    log.info("event=monitor domain=%s batch_id=%s reasons=%s", domain, batch_id, ",".join(reasons) or "none")
    return {"batch_id": batch_id, "retrain": bool(reasons), "reasons": reasons}


def _training_data(spec: DomainSpec, batch_id: str, frame: pd.DataFrame, champion) -> tuple:
    """(train, holdout, window): the champion's window plus the new batch; the holdout is new data.

    The holdout comes from the new batch, so challenger and champion are judged on
    the world as it is now. An unlabelled batch adds nothing to learn from: the
    challenger then learns from the window, holding part of it out.
    """
    import pandas as pd

    from continuum import training

    keys = Keys(spec.name)
    window: list[str] = []
    if champion is not None and storage.exists(keys.window(champion.version)):
        window = [b for b in storage.get_json(keys.window(champion.version)) if b != batch_id]
    fraction, seed = spec.training.holdout_fraction, spec.training.seed
    if _labelled(spec, frame):
        window = window[-(spec.training.window_batches - 1) :] if spec.training.window_batches > 1 else []
        new_train, holdout = training.split(frame, spec, test_size=fraction, seed=seed)
        train = pd.concat([*(storage.get_frame(keys.validated(b)) for b in window), new_train], ignore_index=True)
        return train, holdout, [*window, batch_id]
    window = window[-spec.training.window_batches :]
    if not window:
        return None, None, []
    history = pd.concat([storage.get_frame(keys.validated(b)) for b in window], ignore_index=True)
    train, holdout = training.split(history, spec, test_size=fraction, seed=seed)
    return train, holdout, window


def run_training(domain: str, batch_id: str) -> dict:
    """Train, register and judge a challenger when the decision asked for one."""
    from continuum import blessing, registry, training

    spec = get_domain(domain)
    keys = Keys(domain)
    record = decision.load(domain, batch_id)
    if not record.retrain.triggered:
        return {"batch_id": batch_id, "trained": False}
    champion = registry.champion(domain)
    frame = storage.get_frame(keys.validated(batch_id))
    train, holdout, window = _training_data(spec, batch_id, frame, champion)
    if train is None:
        record.extra["retrain_skipped"] = "no labelled data: the batch has no labels and no champion window exists"
        record.save()
        return {"batch_id": batch_id, "trained": False}
    pipeline = training.fit(spec, train)
    result = training.train_and_register(
        spec,
        train,
        holdout,
        batch_id=batch_id,
        dataset_uri=storage.uri(keys.validated(batch_id)),
        tags={"role": "challenger", "reasons": ",".join(record.retrain.reasons)},
        pipeline=pipeline,
        params={"window": ",".join(window)},
    )
    _save_lineage(spec, result.version, train, window)
    champion_model = registry.load_champion(domain) if champion is not None else None
    comparison = blessing.compare_on_holdout(spec, pipeline, champion_model, holdout)
    blessed, why_not = blessing.bless(spec, **comparison)
    _record_blessing(spec, result, comparison, blessed, why_not)
    record.challenger = decision.Challenger(
        version=result.version,
        metrics=comparison["challenger"],
        run_id=result.run_id,
        blessed=blessed,
        why_not=why_not,
    )
    if comparison["champion"] is not None:
        record.extra["champion_on_holdout"] = comparison["champion"]
    record.save()
    log.info(
        "event=challenger domain=%s batch_id=%s version=%s blessed=%s why_not=%s",
        domain,
        batch_id,
        result.version,
        blessed,
        "; ".join(why_not),
    )
    return {"batch_id": batch_id, "trained": True, "version": result.version, "blessed": blessed}


def _record_blessing(spec: DomainSpec, result, comparison: dict, blessed: bool, why_not: list[str]) -> None:
    """Put the verdict where MLflow users look: the challenger's run and its model version."""
    import math

    import mlflow

    client = mlflow.MlflowClient()
    for name, value in (comparison["champion"] or {}).items():
        if value is not None and not math.isnan(value):
            client.log_metric(result.run_id, f"champion_{name}", float(value))
    client.log_text(result.run_id, json.dumps(comparison, indent=2, default=str), "blessing.json")
    client.set_tag(result.run_id, "blessed", str(blessed).lower())
    client.set_model_version_tag(spec.name, result.version, "blessed", str(blessed).lower())
    if why_not:
        client.set_model_version_tag(spec.name, result.version, "why_not", "; ".join(why_not)[:5000])


def run_promotion(domain: str, batch_id: str) -> dict:
    """A blessed challenger becomes champion (the old one keeps `previous`); otherwise nothing moves."""
    from continuum import registry

    record = decision.load(domain, batch_id)
    if record.challenger is not None and record.challenger.blessed:
        registry.promote(domain, record.challenger.version)
        record.promoted = True
    champion = registry.champion(domain)
    record.champion = _model_version(champion) if champion is not None else None
    record.save()
    return {"batch_id": batch_id, "promoted": record.promoted, "champion": champion.version if champion else None}


def run_scoring(domain: str, batch_id: str) -> dict:
    """Score the batch with the champion after a smoke test; attach the final record to MLflow."""
    from continuum import registry, scoring

    spec = get_domain(domain)
    keys = Keys(domain)
    record = decision.load(domain, batch_id)
    champion = registry.champion(domain)
    if champion is None:
        record.extra["scoring"] = "skipped: no champion to score with"
    else:
        model = registry.load_champion(domain)
        frame = storage.get_frame(keys.validated(batch_id))
        scoring.smoke_test(spec, model, storage.get_frame(keys.reference(champion.version)).head(50))
        storage.put_frame(keys.scores(batch_id), scoring.score(spec, model, frame))
        record.scores = storage.uri(keys.scores(batch_id))
        record.champion = _model_version(champion)
    record.save()
    attach_decision(record)
    return {"batch_id": batch_id, "scores": record.scores}


def attach_decision(record: decision.DecisionRecord) -> None:
    """The final record goes to the batch's MLflow run too (and to the challenger's, when there is one)."""
    import mlflow

    from continuum import tracking

    text = json.dumps(record.model_dump(mode="json"), indent=2)
    tracking.log_to_batch_run(record.domain, record.batch_id, texts={"decision.json": text})
    if record.challenger is not None and record.challenger.run_id:
        mlflow.MlflowClient().log_text(record.challenger.run_id, text, "decision.json")
