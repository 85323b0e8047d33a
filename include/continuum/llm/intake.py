"""Noticing new conversation logs: the event that triggers a prompt evaluation.

A short-interval scan lists `llm/conversations/<assistant>/` and announces each
file once (by key and ETag, so a file replaced under the same name is announced
again). The evaluation itself validates, redacts and moves the files.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from continuum import storage


def _marker(assistant: str, key: str, etag: str) -> str:
    digest = hashlib.sha256(f"{key}\0{etag}".encode()).hexdigest()[:24]
    return storage.LlmKeys(assistant).announced(digest)


def announce_new(assistant: str) -> list[str]:
    """The JSONL files landed since the last scan; each is returned once."""
    new: list[str] = []
    for obj in storage.list_objects(storage.LlmKeys(assistant).landing):
        key, etag = obj["Key"], obj.get("ETag", "")
        if not key.endswith(".jsonl"):
            continue
        marker = _marker(assistant, key, etag)
        if storage.exists(marker):
            continue
        storage.put_json(marker, {"key": key, "etag": etag, "announced_at": datetime.now(UTC).isoformat()})
        new.append(key)
    return new


def land_logs(assistant: str, name: str, data: bytes) -> str:
    """Put a JSONL file of conversations into the assistant's landing zone (`continuum llm ingest`)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return storage.put_bytes(f"{storage.LlmKeys(assistant).landing}{stamp}-{name}", data, "application/x-ndjson")
