"""S3 storage: one key builder and the few operations the DAGs need.

Every key is derived from a domain and a batch id, so a task that runs twice
reads and writes the same objects (idempotent reruns). boto3's standard
configuration is used for the rest: credentials, region and `AWS_ENDPOINT_URL`
come from the environment. Retries and timeouts are bounded (settings.s3_client_config)
so an unreachable endpoint fails the task instead of hanging it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from continuum import settings

if TYPE_CHECKING:
    import pandas as pd


class Keys:
    """The S3 layout of one domain (see docs/architecture.md)."""

    def __init__(self, domain: str):
        self.domain = domain

    @property
    def landing(self) -> str:
        return f"landing/{self.domain}/"

    def batch(self, batch_id: str) -> str:
        return f"batches/{self.domain}/{batch_id}/"

    def raw(self, batch_id: str, extension: str) -> str:
        return f"{self.batch(batch_id)}raw{extension}"

    def manifest(self, batch_id: str) -> str:
        return f"{self.batch(batch_id)}manifest.json"

    def decision(self, batch_id: str) -> str:
        return f"{self.batch(batch_id)}decision.json"

    @property
    def queue(self) -> str:
        """Batches registered and not yet finished, one marker each, sorted by arrival."""
        return f"queue/{self.domain}/"

    def queued(self, batch_id: str, landed_at: str) -> str:
        return f"{self.queue}{landed_at}-{batch_id}"

    def retrain_request(self) -> str:
        """A retrain asked for on unlabelled data, waiting for the next labelled batch."""
        return f"batches/{self.domain}/retrain-waiting-for-labels.json"

    def scheduled_retrain(self, retrain_id: str) -> str:
        """A retrain of a stale champion asked for by the health check (`retrain_on_schedule`)."""
        return f"{self.batch(retrain_id)}retrain.json"

    def validated(self, batch_id: str) -> str:
        return f"validated/{self.domain}/{batch_id}/data.parquet"

    def validation_report(self, batch_id: str) -> str:
        return f"{self.batch(batch_id)}validation.json"

    def quarantine(self, batch_id: str) -> str:
        return f"quarantine/{self.domain}/{batch_id}/"

    def drift_report(self, batch_id: str) -> str:
        return f"{self.batch(batch_id)}drift.html"

    def ranking_report(self, batch_id: str) -> str:
        """Evidently's recommender report of the batch's challenger (and champion) on its holdout."""
        return f"{self.batch(batch_id)}ranking.html"

    def model(self, version: str) -> str:
        """What a registered version was trained on: its reference sample and its batch window."""
        return f"models/{self.domain}/{version}/"

    def reference(self, version: str) -> str:
        return f"{self.model(version)}reference.parquet"

    def drift_profile(self, version: str) -> str:
        """The reference's drift statistics (sorted values, counts), made once per version."""
        return f"{self.model(version)}drift_profile.npz"

    def window(self, version: str) -> str:
        return f"{self.model(version)}window.json"

    def scores(self, batch_id: str) -> str:
        return f"scores/{self.domain}/{batch_id}.parquet"

    @property
    def labels_landing(self) -> str:
        """Where users land late labels: CSV or Parquet files of the id column and the target."""
        return f"labels/{self.domain}/"

    def labels(self, labels_id: str) -> str:
        """A registered labels file (id = hash of its bytes): raw.<ext>, manifest.json, outcome.json (last)."""
        return f"labelled/{self.domain}/{labels_id}/"

    def labels_quarantine(self, labels_id: str) -> str:
        return f"{self.quarantine('labels')}{labels_id}/"

    @property
    def realised_root(self) -> str:
        """Every realised record of the domain, one folder per scored batch."""
        return f"realised/{self.domain}/"

    def realised_prefix(self, batch_id: str) -> str:
        return f"{self.realised_root}{batch_id}/"

    def realised(self, batch_id: str, labels_id: str) -> str:
        """The champion's realised metric on one scored batch from one labels file."""
        return f"{self.realised_prefix(batch_id)}{labels_id}.json"

    def alert(self, name: str) -> str:
        return f"alerts/{self.domain}/{name}.json"

    @property
    def alert_states(self) -> str:
        """Where the noise-control state of every alert kind of the domain lives."""
        return f"alert-state/{self.domain}/"

    def decision_lease(self) -> str:
        """Who is deciding this domain's batches right now (see `continuum.lease`)."""
        return f"leases/{self.domain}/decide.json"

    def alert_state(self, kind: str) -> str:
        """Noise-control state of one alert kind (outside alerts/, so listing alerts lists only alerts)."""
        return f"{self.alert_states}{kind}.json"


class LlmKeys:
    """The S3 layout of one assistant (see docs/architecture.md); the one builder of `llm/` keys.

    A window is named `<start>-<end>` (see `continuum.llm.evaluation.window_id`); an
    evaluation is keyed by its window and its run, so no evaluation overwrites another.
    """

    def __init__(self, assistant: str):
        self.assistant = assistant

    @property
    def landing(self) -> str:
        """Where users land JSONL logs (personal data)."""
        return f"llm/conversations/{self.assistant}/"

    @property
    def raw_prefix(self) -> str:
        """Landed files after redaction: RESTRICTED, kept only `raw_retention_days`."""
        return f"llm/raw/{self.assistant}/"

    def raw(self, sha: str) -> str:
        return f"{self.raw_prefix}{sha}.jsonl"

    @property
    def announced_prefix(self) -> str:
        return f"llm/announced/{self.assistant}/"

    def announced(self, digest: str) -> str:
        return f"{self.announced_prefix}{digest}.json"

    def quarantine(self, stem: str) -> str:
        return f"quarantine/llm/{self.assistant}/{stem}.jsonl"

    def quarantine_report(self, stem: str) -> str:
        return f"quarantine/llm/{self.assistant}/{stem}.report.json"

    @property
    def redacted_prefix(self) -> str:
        return f"llm/redacted/{self.assistant}/"

    def redacted(self, sha: str) -> str:
        return f"{self.redacted_prefix}{sha}.jsonl"

    def manifest(self, sha: str) -> str:
        """What a redacted file holds; written last, so its presence means "processed"."""
        return f"{self.redacted_prefix}{sha}.json"

    @property
    def scores_prefix(self) -> str:
        return f"llm/scores/{self.assistant}/"

    def scores(self, window: str) -> str:
        return f"{self.scores_prefix}{window}.parquet"

    def scores_summary(self, window: str) -> str:
        return f"llm/scores/{self.assistant}/{window}.json"

    @property
    def decisions_prefix(self) -> str:
        return f"llm/decisions/{self.assistant}/"

    def decision(self, window: str, run: str) -> str:
        return f"{self.decisions_prefix}{window}/{run}.json"

    def report(self, window: str, run: str) -> str:
        return f"{self.decisions_prefix}{window}/{run}.html"

    def judge(self, window: str) -> str:
        """The judge's grades of candidates' replays of the window (after the decision)."""
        return f"llm/judge/{self.assistant}/{window}.json"

    def judge_window(self, window: str) -> str:
        """The judge's grades of the window's logged conversations and its agreement with people."""
        return f"llm/judge/{self.assistant}/{window}.logged.json"

    def cache(self, digest: str) -> str:
        """One cached LLM answer, named by the hash of its request (model, parameters, messages)."""
        return f"llm/cache/{self.assistant}/{digest[:2]}/{digest}.json"

    def optimiser(self, window: str) -> str:
        """The optimiser's finalists for the window: probe score, held-out gain, registered or why not."""
        return f"llm/optimiser/{self.assistant}/{window}.json"

    def reference(self, version: str) -> str:
        """A fixed, versioned set of good conversations: what `similarity` compares against."""
        return f"llm/references/{self.assistant}/{version}.jsonl"

    def tool_schemas(self, sha256: str) -> str:
        """The tool schemas a prompt version was written for, named by their hash (see `llm.tool_schemas`)."""
        return f"llm/tools/{self.assistant}/{sha256}.json"


def batch_id_for(content: bytes) -> str:
    """A stable batch id: the same bytes landed twice get the same id and are processed once."""
    return hashlib.sha256(content).hexdigest()[:16]


@functools.cache
def client():
    import boto3

    return boto3.client("s3", config=settings.s3_client_config())


def ensure_bucket(name: str | None = None) -> None:
    from botocore.exceptions import ClientError

    name = name or settings.bucket()
    try:
        client().head_bucket(Bucket=name)
    except ClientError:
        client().create_bucket(Bucket=name)


def put_bytes(key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    client().put_object(Bucket=settings.bucket(), Key=key, Body=data, ContentType=content_type)
    return key


def get_bytes(key: str) -> bytes:
    buffer = io.BytesIO()
    client().download_fileobj(settings.bucket(), key, buffer)
    return buffer.getvalue()


def get_bytes_or_none(key: str) -> bytes | None:
    """The object's bytes, or None when it does not exist (any other error raises)."""
    from botocore.exceptions import ClientError

    try:
        return get_bytes(key)
    except ClientError as exc:
        if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def stream(key: str, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The object's bytes in chunks, for a response that should not hold a report in memory.

    The object is opened here, so a missing key or an outage raises before the first chunk.
    """
    body = client().get_object(Bucket=settings.bucket(), Key=key)["Body"]
    return body.iter_chunks(chunk_size)


def put_json(key: str, payload: Any) -> str:
    return put_bytes(key, json.dumps(payload, indent=2, default=str).encode(), "application/json")


def get_json(key: str) -> Any:
    return json.loads(get_bytes(key))


def exists(key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client().head_object(Bucket=settings.bucket(), Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def list_objects(prefix: str) -> list[dict]:
    """Every object under `prefix` as boto3 describes it (Key, LastModified, Size, ...)."""
    paginator = client().get_paginator("list_objects_v2")
    objects: list[dict] = []
    for page in paginator.paginate(Bucket=settings.bucket(), Prefix=prefix):
        objects += page.get("Contents", [])
    return objects


def list_keys(prefix: str) -> list[str]:
    return sorted(obj["Key"] for obj in list_objects(prefix))


def delete(key: str) -> None:
    """Only for an object that already exists under another key (see `move`)."""
    client().delete_object(Bucket=settings.bucket(), Key=key)


def move(source: str, destination: str) -> str:
    """Copy then delete: the object exists under one of the two keys at every moment."""
    bucket = settings.bucket()
    client().copy({"Bucket": bucket, "Key": source}, bucket, destination)
    delete(source)
    return destination


class Conflict(Exception):
    """A conditional write lost: the object was created, changed or deleted since it was read."""


# 412: the precondition failed; 409: AWS refused a concurrent conditional write; a missing
# object under If-Match answers 404 NoSuchKey (AWS, MinIO and moto alike).
_CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey"}


def _error_code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def get_json_tagged(key: str) -> tuple[Any, str] | None:
    """(payload, ETag) of a JSON object, or None when it does not exist; any other error raises."""
    from botocore.exceptions import ClientError

    try:
        response = client().get_object(Bucket=settings.bucket(), Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(response["Body"].read()), response["ETag"]


def put_json_if(key: str, payload: Any, etag: str | None) -> str:
    """Write `key` only while it still has `etag` (None: only if it does not exist); the new ETag.

    S3 conditional writes (`If-Match` / `If-None-Match: *`): the check and the write are one
    atomic step on the server, so of two writers racing from the same read exactly one wins
    and the other gets `Conflict`.
    """
    from botocore.exceptions import ClientError

    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    body = json.dumps(payload, indent=2, default=str).encode()
    try:
        response = client().put_object(
            Bucket=settings.bucket(), Key=key, Body=body, ContentType="application/json", **condition
        )
    except ClientError as exc:
        if _error_code(exc) in _CONFLICT_CODES:
            raise Conflict(f"{key} changed since it was read") from exc
        raise
    return response["ETag"]


def delete_if(key: str, etag: str) -> None:
    """Delete `key` only while it still has `etag`; `Conflict` when it changed or is gone."""
    from botocore.exceptions import ClientError

    try:
        client().delete_object(Bucket=settings.bucket(), Key=key, IfMatch=etag)
    except ClientError as exc:
        if _error_code(exc) in _CONFLICT_CODES:
            raise Conflict(f"{key} changed since it was read") from exc
        raise


def put_frame(key: str, frame: pd.DataFrame) -> str:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return put_bytes(key, buffer.getvalue())


def get_frame(key: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(get_bytes(key)))


def uri(key: str) -> str:
    return f"s3://{settings.bucket()}/{key}"
