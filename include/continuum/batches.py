"""Which batch a decision run is about, and which batches are still waiting.

Pending work lives in S3, not in asset events: landing writes one marker per
registered batch under `queue/<domain>/<landed_at>-<batch_id>`, and the batch's
last step deletes it. Airflow drops asset events that arrive while a
`max_active_runs=1` DAG runs (apache/airflow#56050), so a run never trusts the
event payload as the list of work: it takes the oldest marker. A lost event then
only delays a batch until the next run. No Airflow import here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from continuum import storage
from continuum.storage import Keys

# storage.batch_id_for: 16 hex digits. Anything else never reaches an S3 key or an MLflow filter.
BATCH_ID_PATTERN = "^[0-9a-f]{16}$"
_BATCH_ID = re.compile(BATCH_ID_PATTERN)


def check_batch_id(batch_id: str) -> str:
    """`batch_id` unchanged when it is a batch id (16 hex digits); ValueError otherwise."""
    if not isinstance(batch_id, str) or not _BATCH_ID.match(batch_id):
        raise ValueError(f"batch id {batch_id!r} is not 16 hex digits; copy it from `continuum status` or the land DAG")
    return batch_id


def _unique(ids: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for batch_id in ids:
        if batch_id and batch_id not in seen:
            seen.append(check_batch_id(str(batch_id)))
    return seen


def batch_ids_from_context(context: Mapping[str, Any]) -> list[str]:
    """The batch ids a run was asked about: the `batch_ids` param, else the triggering asset events."""
    params = context.get("params") or {}
    if params.get("batch_ids"):
        return _unique(params["batch_ids"])
    events = context.get("triggering_asset_events") or {}
    ids: list[str] = []
    for asset_events in events.values():
        for event in asset_events:
            extra = getattr(event, "extra", None) or {}
            ids += extra.get("batch_ids", [])
    return _unique(ids)


def enqueue(domain: str, batch_id: str, landed_at: str) -> str:
    """Mark a registered batch as waiting for its decision (idempotent)."""
    return storage.put_bytes(Keys(domain).queued(check_batch_id(batch_id), landed_at), b"")


def _markers(domain: str) -> list[tuple[str, str]]:
    """(marker key, batch id) oldest first; the key sorts by arrival time."""
    return [(key, key.rsplit("-", 1)[-1]) for key in storage.list_keys(Keys(domain).queue)]


def pending(domain: str) -> list[str]:
    """Batch ids registered and not finished, in arrival order."""
    return [batch_id for _, batch_id in _markers(domain)]


def next_batch(domain: str, among: list[str] | None = None) -> str | None:
    """The oldest pending batch (of `among`, when given); None when nothing waits."""
    for batch_id in pending(domain):
        if not among or batch_id in among:
            return batch_id
    return None


def dequeue(domain: str, batch_id: str) -> None:
    """The batch is finished: drop its marker (a missing marker is fine, e.g. on a retry)."""
    for key, queued in _markers(domain):
        if queued == batch_id:
            storage.delete(key)
