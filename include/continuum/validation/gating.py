"""The S3 side of the gate: one landed batch ends as validated data or in quarantine, never both.

Idempotent by batch id: every key comes from the batch id, and the outcome is stored in
the validation report, which is written last (after the validated data, or after the raw
file has moved to quarantine). A rerun that finds a finished outcome returns it; a rerun
after a crash half-way finds no finished outcome and does the work again, reading the
raw file wherever it is. Nothing is deleted: a failed batch's raw file is moved.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from continuum import storage
from continuum.storage import Keys
from continuum.validation.checks import ValidationResult, conform, validate
from continuum.validation.reading import UnreadableBatch, read_batch

if TYPE_CHECKING:
    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)


def quarantine_keys(keys: Keys, batch_id: str, extension: str) -> tuple[str, str]:
    """Where a failed batch's raw file and its quarantine report go."""
    return keys.quarantine(batch_id) + "raw" + extension, keys.quarantine(batch_id) + "report.json"


def gate(spec: DomainSpec, batch_id: str) -> dict[str, Any]:
    """Validate the landed batch `batch_id`; returns a small JSON-safe outcome for XCom."""
    keys = Keys(spec.name)
    stored = _stored_outcome(keys, batch_id)
    if stored is not None:
        log.info(
            "gate domain=%s batch=%s already_gated=true success=%s", spec.name, batch_id, stored["success"]
        )
        return stored

    if not storage.exists(keys.manifest(batch_id)):
        raise LookupError(
            f"batch '{batch_id}' of domain '{spec.name}' has no manifest at {storage.uri(keys.manifest(batch_id))};"
            " land the file first"
        )
    manifest = storage.get_json(keys.manifest(batch_id))
    extension = manifest.get("extension") or f".{spec.data.format}"
    quarantined_raw, quarantine_report = quarantine_keys(keys, batch_id, extension)
    raw_key = manifest["raw_key"] if storage.exists(manifest["raw_key"]) else quarantined_raw
    data = storage.get_bytes(raw_key)

    frame = None
    try:
        frame = read_batch(data, extension)
        result = validate(spec, frame)
        reason = result.reason
    except UnreadableBatch as exc:
        result, reason = None, exc.reason

    when = datetime.now(UTC).isoformat()
    if result is not None and result.success:
        storage.put_frame(keys.validated(batch_id), conform(spec, frame))
        outcome = _outcome(
            batch_id, result, reason, keys.validation_report(batch_id), keys.validated(batch_id)
        )
    else:
        outcome = _outcome(batch_id, result, reason, quarantine_report, None)
        storage.put_json(quarantine_report, _report(spec, manifest, result, reason, when, outcome))
        if raw_key != quarantined_raw:
            storage.move(raw_key, quarantined_raw)
    storage.put_json(keys.validation_report(batch_id), _report(spec, manifest, result, reason, when, outcome))
    log.info(
        "gate domain=%s batch=%s success=%s quarantined=%s rows=%s failed=%d warnings=%d",
        spec.name,
        batch_id,
        outcome["success"],
        outcome["quarantined"],
        outcome["row_count"],
        len(outcome["failed"]),
        len(outcome["warnings"]),
    )
    return outcome


def _stored_outcome(keys: Keys, batch_id: str) -> dict[str, Any] | None:
    """The outcome of a finished earlier run: its report exists and so does what it produced."""
    if not storage.exists(keys.validation_report(batch_id)):
        return None
    outcome = storage.get_json(keys.validation_report(batch_id)).get("outcome")
    if not outcome:
        return None
    if outcome["success"] and not storage.exists(keys.validated(batch_id)):
        return None
    if outcome["quarantined"] and not storage.list_keys(keys.quarantine(batch_id) + "raw"):
        return None
    return outcome


def _outcome(
    batch_id: str,
    result: ValidationResult | None,
    reason: str | None,
    report_key: str,
    validated_key: str | None,
) -> dict[str, Any]:
    success = bool(result and result.success)
    return {
        "batch_id": batch_id,
        "success": success,
        "quarantined": not success,
        "failed": [f.name for f in result.failed] if result else [],
        "warnings": [f.name for f in result.warnings] if result else [],
        "report_key": report_key,
        "validated_key": validated_key,
        "row_count": result.row_count if result else 0,
        "reason": reason,
    }


def _report(
    spec: DomainSpec,
    manifest: dict[str, Any],
    result: ValidationResult | None,
    reason: str | None,
    when: str,
    outcome: dict[str, Any],
) -> dict[str, Any]:
    return {
        "domain": spec.name,
        "batch_id": outcome["batch_id"],
        "success": outcome["success"],
        "reason": reason,
        "row_count": outcome["row_count"],
        "when": when,
        "source_key": manifest.get("source_key"),
        "sha256": manifest.get("sha256"),
        "suite": result.suite if result else f"{spec.name}_contract",
        "evaluated": result.evaluated if result else 0,
        "skipped": result.skipped if result else [],
        "failed": [{**f.model_dump(), "summary": f.describe()} for f in result.failed] if result else [],
        "warnings": [{**f.model_dump(), "summary": f.describe()} for f in result.warnings] if result else [],
        "outcome": outcome,
    }
