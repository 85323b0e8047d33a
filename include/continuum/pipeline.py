"""The steps of a domain's loop, one function per DAG task, each keyed by batch id.

Each function composes the single-purpose modules (validation, training, ...),
records its outcome in the batch's decision record and returns a small
JSON-safe dict for XCom. None of them imports Airflow.
"""

from __future__ import annotations

import logging

from continuum import decision, storage
from continuum.specs import get_domain
from continuum.storage import Keys

log = logging.getLogger(__name__)


def run_gate(domain: str, batch_id: str) -> dict:
    """Validation gate for one batch; alerts the owner when it is quarantined."""
    from continuum import alerts, validation

    spec = get_domain(domain)
    outcome = validation.gate(spec, batch_id)
    record = decision.load(domain, batch_id)
    record.validation = decision.Validation(
        success=outcome["success"],
        failed=outcome["failed"],
        report=storage.uri(outcome["report_key"]) if outcome.get("report_key") else None,
        reason=outcome.get("reason"),
    )
    record.quarantined = outcome["quarantined"]
    record.save()
    if outcome["quarantined"]:
        alerts.deliver(alerts.quarantine_alert(spec, batch_id, outcome))
    log.info(
        "event=gate domain=%s batch_id=%s success=%s failed=%d",
        domain,
        batch_id,
        outcome["success"],
        len(outcome["failed"]),
    )
    return outcome


def run_training(domain: str, batch_id: str) -> dict:
    """Train a model on the validated batch, log and register it in MLflow."""
    from continuum import training

    spec = get_domain(domain)
    key = Keys(domain).validated(batch_id)
    frame = storage.get_frame(key)
    train, holdout = training.split(frame, spec)
    result = training.train_and_register(
        spec, train, holdout, batch_id=batch_id, dataset_uri=storage.uri(key)
    )
    record = decision.load(domain, batch_id)
    record.challenger = decision.Challenger(
        version=result.version, metrics=result.metrics, run_id=result.run_id
    )
    record.save()
    log.info("event=trained domain=%s batch_id=%s version=%s", domain, batch_id, result.version)
    return {"batch_id": batch_id, "version": result.version, "metrics": result.metrics, "run_id": result.run_id}
