"""Landing: turn files dropped under `landing/<domain>/` into registered batches.

A batch id is the hash of the file's bytes, so the same data landed twice is
registered once. Registration copies the file to `batches/<domain>/<id>/raw.<ext>`,
writes the manifest, queues the batch for its decision (`batches.enqueue`), and
only then removes the landing object: a crash at any
point leaves the file under one key or the other, and the next scan finishes the
job. A duplicate landing is kept beside its batch under `duplicates/`, never
deleted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import PurePosixPath

from continuum import batches, storage
from continuum.storage import Keys

log = logging.getLogger(__name__)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def is_gated(domain: str, batch_id: str) -> bool:
    """True once the validation gate has decided on the batch (validated or quarantined)."""
    keys = Keys(domain)
    return storage.exists(keys.validation_report(batch_id)) or storage.exists(
        keys.quarantine(batch_id) + "report.json"
    )


def register(domain: str, landing_key: str) -> str | None:
    """Register one landed object; returns its batch id, or None for an already processed duplicate."""
    keys = Keys(domain)
    data = storage.get_bytes(landing_key)
    batch_id = storage.batch_id_for(data)
    name = PurePosixPath(landing_key).name
    if storage.exists(keys.manifest(batch_id)):
        if is_gated(domain, batch_id):
            duplicate = f"{keys.batch(batch_id)}duplicates/{_utc_now()}-{name}"
            storage.move(landing_key, duplicate)
            log.info("event=duplicate_batch domain=%s batch_id=%s kept=%s", domain, batch_id, duplicate)
            return None
        # Registered by an earlier scan that did not finish: finish it and hand the batch on again.
        manifest = storage.get_json(keys.manifest(batch_id))
        batches.enqueue(domain, batch_id, manifest.get("queued_at") or _utc_now())
        storage.delete(landing_key)
        return batch_id
    extension = PurePosixPath(name).suffix.lower()
    raw_key = keys.raw(batch_id, extension)
    queued_at = _utc_now()
    storage.put_bytes(raw_key, data)
    storage.put_json(
        keys.manifest(batch_id),
        {
            "batch_id": batch_id,
            "domain": domain,
            "source_key": landing_key,
            "filename": name,
            "raw_key": raw_key,
            "extension": extension,
            "size_bytes": len(data),
            "landed_at": datetime.now(UTC).isoformat(),
            "queued_at": queued_at,
        },
    )
    batches.enqueue(domain, batch_id, queued_at)  # after the manifest: a queued batch always has one
    storage.delete(landing_key)
    log.info("event=batch_registered domain=%s batch_id=%s source=%s bytes=%d", domain, batch_id, name, len(data))
    return batch_id


def register_landed(domain: str) -> list[str]:
    """Register every file waiting under `landing/<domain>/`; returns the new batch ids in landing order."""
    batch_ids: list[str] = []
    for key in storage.list_keys(Keys(domain).landing):
        if key.endswith("/"):
            continue
        batch_id = register(domain, key)
        if batch_id is not None and batch_id not in batch_ids:
            batch_ids.append(batch_id)
    return batch_ids


def land_file(domain: str, path: str, data: bytes) -> str:
    """Put a local file into the domain's landing zone (what `continuum ingest` does)."""
    key = f"{Keys(domain).landing}{_utc_now()}-{PurePosixPath(path).name}"
    storage.put_bytes(key, data)
    return key
