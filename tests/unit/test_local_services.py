"""embedded_services(): CLI commands use the running platform, or start what they need."""

from __future__ import annotations

import os

import boto3
import pytest

from continuum.local import state
from continuum.local.services import embedded_services


@pytest.fixture
def bare_env(tmp_path, monkeypatch):
    """A user environment with no endpoints and no Airflow settings, home in tmp_path."""
    for name in list(os.environ):
        if name.startswith(("AIRFLOW", "MLFLOW_", "AWS_", "CONTINUUM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONTINUUM_HOME", str(tmp_path))
    monkeypatch.setenv("CONTINUUM_BUCKET", "cli-data")
    monkeypatch.setenv("CONTINUUM_MLFLOW_BUCKET", "cli-mlflow")
    return tmp_path


def test_without_a_platform_s3_starts_in_process_and_is_saved_on_exit(bare_env):
    before = dict(os.environ)
    with embedded_services(migrate=False) as exported:
        assert os.environ["AWS_ENDPOINT_URL"] == exported["AWS_ENDPOINT_URL"]
        assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == exported["AWS_ENDPOINT_URL"]
        assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{bare_env / 'mlflow' / 'mlflow.db'}"
        assert os.environ["CONTINUUM_MLFLOW_ARTIFACTS"] == "s3://cli-mlflow/"
        assert os.environ["AIRFLOW_HOME"] == str(bare_env / "airflow")
        s3 = boto3.client("s3")  # standard configuration from the environment, as storage.py uses it
        s3.put_object(Bucket="cli-data", Key="landing/x/batch.csv", Body=b"a\n1\n")
    assert dict(os.environ) == before
    assert (bare_env / "s3" / "cli-data" / "landing" / "x" / "batch.csv").read_bytes() == b"a\n1\n"

    with embedded_services(migrate=False):  # the next command sees what the previous one wrote
        assert boto3.client("s3").get_object(Bucket="cli-data", Key="landing/x/batch.csv")["Body"].read() == b"a\n1\n"


def test_a_running_platform_is_used_instead(bare_env):
    platform_env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:19000", "MLFLOW_TRACKING_URI": "http://127.0.0.1:15000",
                    "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:19000"}
    state.write(bare_env, {"pid": os.getpid(), "env": platform_env})
    with embedded_services(migrate=False):
        for name, value in platform_env.items():
            assert os.environ[name] == value
        assert os.environ["AWS_ACCESS_KEY_ID"]
    assert not (bare_env / "s3").exists()  # no endpoint of its own was started


def test_the_users_variables_win(bare_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.example:9000")
    with embedded_services(migrate=False) as exported:
        assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.example"
        assert os.environ["AWS_ENDPOINT_URL"] == "http://minio.example:9000"
        assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.example:9000"
        assert "MLFLOW_TRACKING_URI" not in exported and "AWS_ACCESS_KEY_ID" not in exported


def test_a_missing_airflow_db_is_migrated(bare_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://unused.example")  # S3 is not what this test is about
    with embedded_services() as exported:
        database = bare_env / "airflow" / "airflow.db"
        assert exported["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{database}"
        assert database.stat().st_size > 0
