"""Which batches a DAG run is about.

A run started by the scheduler learns its batches from the triggering asset
events (each event's extra carries `batch_ids`); a run started by hand or by
`continuum ingest --run` passes them in the `batch_ids` param. The context is
read as a plain mapping, so this module needs no Airflow import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _unique(ids: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for batch_id in ids:
        if batch_id and batch_id not in seen:
            seen.append(str(batch_id))
    return seen


def batch_ids_from_context(context: Mapping[str, Any]) -> list[str]:
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
