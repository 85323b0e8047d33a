"""The embedded S3 endpoint keeps every object across restarts (snapshot on disk)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import uuid

import boto3
import pytest

from continuum.local.s3server import EmbeddedS3, SnapshotLockedError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def start_child(snapshot_dir, port: int, *buckets: str) -> subprocess.Popen:
    """The endpoint as the platform runs it: a child process, stopped by SIGTERM."""
    command = [sys.executable, "-m", "continuum.local.s3server", "--port", str(port),
               "--snapshot-dir", str(snapshot_dir)] + [a for b in buckets for a in ("--bucket", b)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in child.stdout:  # blocks until the endpoint says it is ready (or the process ends)
        if "S3 endpoint ready" in line:
            return child
    pytest.fail(f"the S3 endpoint did not start (exit code {child.wait()})")


def stop_child(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert child.returncode == 0


def test_objects_survive_a_restart_of_the_child_process(tmp_path):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    child = start_child(tmp_path, port, "continuum", "continuum-mlflow")
    try:
        s3 = client(endpoint)
        assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= {"continuum", "continuum-mlflow"}
        s3.put_object(Bucket="continuum", Key="landing/claims/2024-01.csv", Body=b"a,b\n1,2\n", ContentType="text/csv")
        s3.put_object(Bucket="continuum-mlflow", Key="1/abc/artifacts/model.pkl", Body=b"\x00\x01")
        s3.put_object(Bucket="continuum", Key="gone.txt", Body=b"deleted before stop")
        s3.delete_object(Bucket="continuum", Key="gone.txt")
    finally:
        stop_child(child)

    assert (tmp_path / "continuum" / "landing" / "claims" / "2024-01.csv").read_bytes() == b"a,b\n1,2\n"
    assert not (tmp_path / "continuum" / "gone.txt").exists()

    child = start_child(tmp_path, port)
    try:
        s3 = client(endpoint)
        landed = s3.get_object(Bucket="continuum", Key="landing/claims/2024-01.csv")
        assert landed["Body"].read() == b"a,b\n1,2\n" and landed["ContentType"] == "text/csv"
        assert s3.get_object(Bucket="continuum-mlflow", Key="1/abc/artifacts/model.pkl")["Body"].read() == b"\x00\x01"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="continuum").get("Contents", [])] == [
            "landing/claims/2024-01.csv"]
        s3.delete_object(Bucket="continuum", Key="landing/claims/2024-01.csv")
    finally:
        stop_child(child)
    assert not (tmp_path / "continuum" / "landing").exists()  # deletions reach the snapshot, empty dirs pruned


def test_snapshot_writes_only_changed_objects_and_restores_hand_dropped_files(tmp_path):
    bucket = f"snap-{uuid.uuid4().hex[:8]}"
    dropped = tmp_path / bucket / "landing" / "by-hand.csv"
    dropped.parent.mkdir(parents=True)
    dropped.write_bytes(b"x\n1\n")
    with EmbeddedS3(tmp_path, buckets=[bucket]) as server:
        s3 = client(server.endpoint)
        assert s3.get_object(Bucket=bucket, Key="landing/by-hand.csv")["Body"].read() == b"x\n1\n"
        s3.put_object(Bucket=bucket, Key="a.txt", Body=b"1")
        assert server.snapshot() >= 1
        assert server.snapshot() == 0  # nothing changed since
        s3.put_object(Bucket=bucket, Key="a.txt", Body=b"2")
        assert server.snapshot() == 1
        assert (tmp_path / bucket / "a.txt").read_bytes() == b"2"
        manifest = json.loads((tmp_path / ".manifest.json").read_text())
        assert set(manifest[bucket]) == {"a.txt", "landing/by-hand.csv"}


def test_a_second_endpoint_on_the_same_snapshot_is_refused(tmp_path):
    with EmbeddedS3(tmp_path):
        with pytest.raises(SnapshotLockedError, match="stop it"):
            EmbeddedS3(tmp_path).start()


def test_a_taken_port_fails_instead_of_hanging(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError, match="already in use"):
            EmbeddedS3(tmp_path, port=busy.getsockname()[1]).start()
    with EmbeddedS3(tmp_path):  # the failed start released the snapshot lock
        pass
