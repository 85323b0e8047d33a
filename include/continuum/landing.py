"""Landing: turn files dropped under `landing/<domain>/` into registered batches.

A batch id is the hash of the file's bytes, so the same data landed twice is
registered once. Registration copies the file to `batches/<domain>/<id>/raw.<ext>`,
writes the manifest, queues the batch for its decision (`batches.enqueue`), and
only then removes the landing object: a crash at any
point leaves the file under one key or the other, and the next scan finishes the
job. A duplicate landing is kept beside its batch under `duplicates/`, never
deleted.

Two registrars may meet on one file (in events mode the event-driven DAG and the
safety-net scan run side by side): the manifest is created with a conditional write,
so one of them registers it and the other leaves the file alone, and a file that is
gone by the time it is read was registered by the other one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

from continuum import batches, storage
from continuum.storage import Keys

log = logging.getLogger(__name__)


def landed_asset_name(domain: str) -> str:
    """The Airflow asset `<domain>_land` and the events DAG emit and `<domain>_decide` is scheduled on."""
    return f"{domain}_landed"


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def is_gated(domain: str, batch_id: str) -> bool:
    """True once the validation gate has decided on the batch (validated or quarantined)."""
    keys = Keys(domain)
    return storage.exists(keys.validation_report(batch_id)) or storage.exists(
        keys.quarantine(batch_id) + "report.json"
    )


def register(domain: str, landing_key: str, via: str = "scan") -> str | None:
    """Register one landed object; returns its batch id, or None for an already processed duplicate.

    `via` (`scan` or `event`) is kept in the manifest as `registered_by`: which path found the file.
    """
    keys = Keys(domain)
    data = storage.get_bytes_or_none(landing_key)
    if data is None:  # another registrar finished it between its listing (or event) and now
        log.info("event=landing_gone domain=%s key=%s", domain, landing_key)
        return None
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
    manifest = {
        "batch_id": batch_id,
        "domain": domain,
        "source_key": landing_key,
        "filename": name,
        "raw_key": raw_key,
        "extension": extension,
        "size_bytes": len(data),
        "landed_at": datetime.now(UTC).isoformat(),
        "queued_at": queued_at,
        "registered_by": via,
    }
    try:
        storage.put_json_if(keys.manifest(batch_id), manifest, None)
    except storage.Conflict:  # a concurrent registrar wrote it first; it queues the batch and removes the file
        log.info("event=batch_registered_elsewhere domain=%s batch_id=%s source=%s", domain, batch_id, name)
        return None
    batches.enqueue(domain, batch_id, queued_at)  # after the manifest: a queued batch always has one
    storage.delete(landing_key)
    log.info("event=batch_registered domain=%s batch_id=%s source=%s bytes=%d", domain, batch_id, name, len(data))
    return batch_id


def register_landed(domain: str, via: str = "scan", older_than: timedelta = timedelta(0)) -> list[str]:
    """Register every file waiting under `landing/<domain>/` (landed `older_than` ago); new batch ids in landing order."""
    batch_ids: list[str] = []
    newest = datetime.now(UTC) - older_than
    for obj in sorted(storage.list_objects(Keys(domain).landing), key=lambda o: o["Key"]):
        key = obj["Key"]
        if key.endswith("/") or (older_than and obj["LastModified"] > newest):
            continue
        batch_id = register(domain, key, via)
        if batch_id is not None and batch_id not in batch_ids:
            batch_ids.append(batch_id)
    return batch_ids


def land_file(domain: str, path: str, data: bytes) -> str:
    """Put a local file into the domain's landing zone (what `continuum ingest` does)."""
    key = f"{Keys(domain).landing}{_utc_now()}-{PurePosixPath(path).name}"
    storage.put_bytes(key, data)
    return key
