"""The embedded S3 endpoint: moto's server, made durable by a snapshot on disk.

moto keeps objects in memory, so on its own everything landed would vanish with the
process. The snapshot directory mirrors the store as plain files
(`<dir>/<bucket>/<key>`, readable and even droppable by hand while the platform is
stopped) plus `.manifest.json` (ETag and content type per key). It is restored on
start, written every `interval` seconds (changed objects only) and on a clean stop.
An exclusive lock on the directory stops two endpoints from overwriting each other's
snapshot.

With `--landing-queue` (events mode) the same server also serves SQS: the queue is created
and the first bucket notifies it of every object created under `landing/`
(`continuum.landing_events.subscribe`). Queued messages live in memory only and are not
snapshotted: a message lost with a restart is what the poll DAG is there for.

Run as a child process of the platform: `python -m continuum.local.s3server --port 9000`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import threading
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = ".manifest.json"
LOCK = ".lock"
TMP_SUFFIX = ".continuum-tmp"


class SnapshotLockedError(RuntimeError):
    pass


_CONDITIONAL_WRITES = threading.Lock()


def serialise_conditional_writes() -> None:
    """Make moto's conditional PUT and DELETE atomic, as they are on AWS S3 and MinIO.

    moto 5.2 checks `If-Match` / `If-None-Match` and then writes, with no lock between the
    two, and its server answers requests on threads. Measured: 16 threads racing an
    `If-None-Match: *` PUT of the same key had more than one winner in 4 of 100 trials
    (with a 1 µs thread switch interval), and all 6 of 6 racers won when the write was
    slowed by 50 ms; with this lock, one winner every time (tests/unit/test_lease.py). The
    decision lease (`continuum.lease`) relies on one winner. Idempotent.
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response, "_continuum_serialised", False):
        return

    def serialised(original):
        def handler(self):
            if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
                with _CONDITIONAL_WRITES:
                    return original(self)
            return original(self)

        return handler

    S3Response.put_object = serialised(S3Response.put_object)
    S3Response.delete_object = serialised(S3Response.delete_object)
    S3Response._continuum_serialised = True


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedS3:
    """A moto S3 server on `host:port` (0 = any free port) backed by `snapshot_dir`."""

    def __init__(
        self, snapshot_dir: Path, port: int = 0, host: str = "127.0.0.1", buckets=(), landing_queue: str | None = None
    ):
        self.snapshot_dir = Path(snapshot_dir)
        self.host, self.port = host, port
        self.buckets = [b for b in buckets if b]
        self.landing_queue = landing_queue  # SQS queue the first bucket notifies of new landing objects
        self.landing_queue_url: str | None = None
        self._server = None
        self._lock_file = None
        self._mutex = threading.Lock()
        self._manifest: dict[str, dict[str, dict[str, str]]] = {}

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Lock the snapshot, serve, restore every object, create the buckets; returns the endpoint."""
        from moto.server import ThreadedMotoServer

        serialise_conditional_writes()
        self._lock()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request is noise
        # ThreadedMotoServer.start() waits forever if the port cannot be bound: check first.
        if self.port and not port_is_free(self.host, self.port):
            self._unlock()
            raise OSError(f"port {self.port} is already in use")
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        restored = self.restore()
        for name in self.buckets:
            self._ensure_bucket(name)
        if self.landing_queue and self.buckets:
            from continuum.landing_events import subscribe

            self.landing_queue_url = subscribe(self.client(), self.client("sqs"), self.buckets[0], self.landing_queue)
        log.info("event=s3_started endpoint=%s restored_objects=%d", self.endpoint, restored)
        return self.endpoint

    def stop(self) -> None:
        """Final snapshot, then stop serving. Safe to call twice."""
        if self._server is None:
            return
        try:
            self.snapshot()
        finally:
            self._server.stop()
            self._server = None
            self._unlock()

    def __enter__(self) -> EmbeddedS3:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self, service: str = "s3"):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="continuum",
            aws_secret_access_key="continuum",
        )

    def restore(self) -> int:
        """Put every file of the snapshot back into the (empty) in-memory store."""
        self._manifest = self._read_manifest()
        if not self.snapshot_dir.is_dir():
            return 0
        s3, count = self.client(), 0
        for bucket_dir in sorted(p for p in self.snapshot_dir.iterdir() if p.is_dir()):
            name, recorded = bucket_dir.name, self._manifest.setdefault(bucket_dir.name, {})
            try:
                self._ensure_bucket(name, s3)
            except Exception as exc:  # noqa: BLE001 - e.g. a hand-made folder that is no valid bucket name
                log.warning("event=s3_restore_skipped bucket=%s reason=%s", name, exc)
                del self._manifest[name]
                continue
            on_disk = {
                p.relative_to(bucket_dir).as_posix(): p
                for p in bucket_dir.rglob("*")
                if p.is_file() and not p.name.endswith(TMP_SUFFIX)
            }
            markers = {k: None for k in recorded if k.endswith("/") and k not in on_disk}
            for key, path in sorted(on_disk.items()) + sorted(markers.items()):
                content_type = recorded.get(key, {}).get("content_type", "application/octet-stream")
                body = path.read_bytes() if path else b""
                etag = s3.put_object(Bucket=name, Key=key, Body=body, ContentType=content_type)["ETag"]
                recorded[key] = {"etag": etag, "content_type": content_type}
                count += 1
            for key in set(recorded) - set(on_disk) - set(markers):
                del recorded[key]  # deleted by hand while stopped
        return count

    def snapshot(self) -> int:
        """Write objects that changed since the last snapshot, drop deleted ones; returns how many written."""
        with self._mutex:
            s3, written = self.client(), 0
            current: dict[str, dict[str, str]] = {}
            for name in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
                current[name] = {}
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                    current[name] |= {obj["Key"]: obj["ETag"] for obj in page.get("Contents", [])}
            for name, objects in current.items():
                recorded = self._manifest.setdefault(name, {})
                (self.snapshot_dir / name).mkdir(parents=True, exist_ok=True)
                for key, etag in objects.items():
                    if recorded.get(key, {}).get("etag") != etag and self._write(s3, name, key, etag):
                        written += 1
                for key in set(recorded) - set(objects):
                    self._remove(name, key)
            for name in set(self._manifest) - set(current):
                shutil.rmtree(self.snapshot_dir / name, ignore_errors=True)
                del self._manifest[name]
            self._write_manifest()
            return written

    def _write(self, s3, name: str, key: str, etag: str) -> bool:
        response = s3.get_object(Bucket=name, Key=key)
        body, content_type = response["Body"].read(), response.get("ContentType", "application/octet-stream")
        entry = {"etag": response.get("ETag", etag), "content_type": content_type}
        if key.endswith("/") or key.startswith("/") or ".." in key.split("/"):
            if body or key.startswith("/") or ".." in key.split("/"):
                log.warning("event=s3_snapshot_skipped bucket=%s key=%s reason=not_a_file_path", name, key)
                return False
            self._manifest[name][key] = entry  # an empty "folder" marker lives in the manifest only
            return True
        path = self.snapshot_dir / name / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + TMP_SUFFIX)
            tmp.write_bytes(body)
            tmp.replace(path)
        except OSError as exc:  # e.g. keys "a" and "a/b" in one bucket
            log.warning("event=s3_snapshot_skipped bucket=%s key=%s reason=%s", name, key, exc)
            return False
        self._manifest[name][key] = entry
        return True

    def _remove(self, name: str, key: str) -> None:
        del self._manifest[name][key]
        path = self.snapshot_dir / name / key
        if not key.endswith("/") and path.is_file():
            path.unlink()
            for parent in path.parents:
                if parent == self.snapshot_dir / name or any(parent.iterdir()):
                    break
                parent.rmdir()

    def _ensure_bucket(self, name: str, s3=None) -> None:
        s3 = s3 or self.client()
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if name not in existing:
            s3.create_bucket(Bucket=name)
        self._manifest.setdefault(name, {})

    def _read_manifest(self) -> dict:
        path = self.snapshot_dir / MANIFEST
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _write_manifest(self) -> None:
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshot_dir / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self._manifest, indent=1, sort_keys=True))
        tmp.replace(self.snapshot_dir / MANIFEST)

    def _lock(self) -> None:
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.snapshot_dir / LOCK, "a+")  # noqa: SIM115 - held for the server's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise SnapshotLockedError(
                f"another embedded S3 endpoint (pid {owner}) is using {self.snapshot_dir}; "
                "stop it (or wait for that command to finish) and try again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def _unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


def serve(server: EmbeddedS3, interval: float = 30.0) -> int:
    """Run until SIGTERM/SIGINT, snapshotting every `interval` seconds and once more at the end."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"S3 endpoint ready at {server.endpoint} (snapshot: {server.snapshot_dir})", flush=True)
    if server.landing_queue_url:
        print(f"SQS queue {server.landing_queue_url} is notified of new objects under landing/", flush=True)
    while not stop.wait(interval):
        try:
            written = server.snapshot()
            if written:
                print(f"snapshot: {written} changed object(s) written", flush=True)
        except Exception as exc:  # noqa: BLE001 - a failed periodic snapshot must not stop the endpoint
            print(f"snapshot failed, will retry: {exc}", flush=True)
    server.stop()
    print("S3 endpoint stopped, snapshot written", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--snapshot-dir", type=Path, required=True)
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--landing-queue", help="events mode: SQS queue the first --bucket notifies of landing/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return serve(EmbeddedS3(args.snapshot_dir, args.port, args.host, args.bucket, args.landing_queue), args.interval)
    except (OSError, SnapshotLockedError) as exc:
        print(f"continuum: the embedded S3 endpoint cannot start: {exc}", flush=True)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
