"""Shared fixtures: an S3 endpoint (moto server), an MLflow store and an Airflow home.

The environment is set before anything imports Airflow, boto3 or MLflow, so every
test (and every DAG run through `dag.test()`) talks to these and never to a real
service. Each test gets its own bucket names, so tests do not see each other's data.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="continuum-tests-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Set before collection so that Airflow's configuration, read at import, sees it.
os.environ.update(
    {
        "CONTINUUM_HOME": str(_SESSION_DIR / "home"),
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_SESSION_DIR / 'airflow' / 'airflow.db'}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_DIR / 'mlflow.db'}",
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "OMP_NUM_THREADS": "1",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",  # explicit: MLflow 3.17 defaults it to true
        "CONTINUUM_SIMULATOR": "on",  # so the integrity tests parse the local-only simulator DAG too
    }
)
for _var in ("CONTINUUM_DOMAINS_PATH", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """A moto S3 server on a free loopback port for the whole session."""
    from moto.server import ThreadedMotoServer

    from continuum.local.s3server import serialise_conditional_writes

    serialise_conditional_writes()  # atomic If-Match / If-None-Match, as on AWS (the decision lease)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["MLFLOW_S3_ENDPOINT_URL"] = endpoint
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """Empty buckets for one test; returns the storage module ready to use.

    The bucket names stay fixed (the DAGs' Asset URIs name the bucket, and Airflow
    keeps one URI per asset name), so isolation comes from emptying them.
    """
    return _fresh_buckets(monkeypatch)


def _fresh_buckets(monkeypatch):
    from continuum import settings, storage

    monkeypatch.setenv("CONTINUUM_BUCKET", "continuum")
    monkeypatch.setenv("CONTINUUM_MLFLOW_BUCKET", "continuum-mlflow")
    storage.client.cache_clear()
    for bucket in (settings.bucket(), settings.mlflow_bucket()):
        storage.ensure_bucket(bucket)
        _empty(storage.client(), bucket)
    return storage


def _empty(client, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects})


@pytest.fixture
def mlflow_store(s3, tmp_path, monkeypatch):
    """An MLflow tracking store of this test's own, with artefacts in the test's S3 bucket."""
    with _own_mlflow(monkeypatch, tmp_path) as uri:
        yield uri


@contextlib.contextmanager
def _own_mlflow(monkeypatch, directory: Path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{directory / 'mlflow.db'}")
    monkeypatch.setenv("CONTINUUM_MLFLOW_ARTIFACTS", f"s3://{os.environ['CONTINUUM_MLFLOW_BUCKET']}/")
    import mlflow

    # set_tracking_uri is process-global and outlives monkeypatch: reset it on teardown, or a
    # later test's MLFLOW_TRACKING_URI would be ignored in favour of this test's store.
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    try:
        yield os.environ["MLFLOW_TRACKING_URI"]
    finally:
        mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def module_services(s3_endpoint, tmp_path_factory):
    """`s3` and `mlflow_store` for a whole module: a story told once and asserted by several tests.

    Yields the module's MonkeyPatch, so the module can set more variables (e.g. its domains path)
    that are undone with these.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        _fresh_buckets(monkeypatch)
        with _own_mlflow(monkeypatch, tmp_path_factory.mktemp("mlflow")):
            yield monkeypatch


@pytest.fixture(scope="session")
def airflow_db():
    """An initialised Airflow metadata database (SQLite) for `dag.test()` runs."""
    from airflow.utils import db

    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    db.initdb()
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture
def oncall(s3, monkeypatch):
    """Slack, email and webhook receivers, connections to them, and a route for every owner.

    Connections and the routing variable are set the way Airflow reads them from the
    environment (AIRFLOW_CONN_*, AIRFLOW_VAR_*), so task processes started later inherit them.
    """
    from alert_receivers import MAIL_FROM, MAIL_TO, start_http_receiver, start_smtp_receiver

    from continuum import alert_delivery, alerts, settings

    http, http_server = start_http_receiver()
    mail, smtp_controller = start_smtp_receiver()
    monkeypatch.syspath_prepend(str(settings.plugins_dir()))  # Airflow does the same for plugins/
    import continuum_notifier  # registers the slack and email senders and the variable loader

    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ONCALL",
        json.dumps({"conn_type": "slackwebhook", "password": f"{http.url}/slack/oncall"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_BROKEN",
        json.dumps({"conn_type": "slackwebhook", "password": f"{http.url}/broken/slack"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_ONCALL",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": mail.port,
                "extra": {"from_email": MAIL_FROM, "disable_ssl": True, "disable_tls": True, "timeout": 5, "retry_limit": 0},
            }
        ),
    )
    monkeypatch.setenv(alerts.WEBHOOK_ENV, f"{http.url}/hook")
    routes = {
        "dedup_minutes": 60,
        "owners": {"*": [{"channel": "slack", "conn_id": "slack_oncall"}, {"channel": "email", "conn_id": "smtp_oncall", "to": [MAIL_TO]}]},
    }
    monkeypatch.setenv(alert_delivery.ROUTES_ENV, json.dumps(routes))
    yield SimpleNamespace(http=http, mail=mail, notifier=continuum_notifier, s3=s3)
    http_server.shutdown()
    http_server.server_close()
    smtp_controller.stop()


@pytest.fixture
def spec_copy(tmp_path, monkeypatch):
    """`spec_copy(base, name, **changes)`: a shipped spec under a new name, in a directory on
    CONTINUUM_DOMAINS_PATH; a dict change updates that section, anything else sets the key.
    Returns (path, document); write the document to the path again to change the spec."""
    import yaml

    from continuum.specs import BUILTIN_DOMAINS_DIR

    directory = tmp_path / "specs"
    directory.mkdir()
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(directory))

    def copy(base: str, name: str, **changes):
        document = yaml.safe_load((BUILTIN_DOMAINS_DIR / f"{base}.yaml").read_text())
        document["name"] = name
        for key, value in changes.items():
            if isinstance(value, dict):
                document.setdefault(key, {}).update(value)
            else:
                document[key] = value
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path, document

    return copy


def services_required() -> bool:
    return os.environ.get("CONTINUUM_REQUIRE_SERVICES") == "1"
