"""The real platform (`make run`): starts, serves Airflow, MLflow and S3, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

from continuum import settings
from continuum.local import state

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
REQUIRE_SERVICES = os.environ.get("CONTINUUM_REQUIRE_SERVICES") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def platform_env(home: Path, **extra: str) -> dict[str, str]:
    """The user's shell without the test session's endpoints, on free ports (a `make run` may be up)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MLFLOW_", "AWS_", "CONTINUUM_"))}
    env |= {
        "CONTINUUM_HOME": str(home),
        "CONTINUUM_AIRFLOW_PORT": str(free_port()),
        "CONTINUUM_MLFLOW_PORT": str(free_port()),
        "CONTINUUM_S3_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    return env | extra


def start(env: dict[str, str], production: bool = False) -> subprocess.Popen:
    code = f"from continuum.local.platform import run; raise SystemExit(run(production={production}))"
    Path(env["CONTINUUM_HOME"]).mkdir(parents=True, exist_ok=True)
    with open(Path(env["CONTINUUM_HOME"]) / "supervisor.out", "wb") as log:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_ready(supervisor: subprocess.Popen, home: Path) -> dict:
    """Until platform.json says ready; fails with the supervisor's output if it exits first."""
    while True:
        current = state.running(home)
        if current and current.get("status") == "ready":
            return current
        if supervisor.poll() is not None:
            output = (home / "supervisor.out").read_text(errors="replace")[-4000:]
            pytest.fail(f"the platform exited with {supervisor.returncode} before it was ready:\n{output}")
        time.sleep(1)


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"{}")


def stop_and_check(supervisor: subprocess.Popen, home: Path, children: dict[str, int]) -> None:
    supervisor.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal delivers to the supervisor
    assert supervisor.wait(timeout=180) == 0, (home / "supervisor.out").read_text(errors="replace")[-4000:]
    assert not state.path(home).exists()
    for name, pid in children.items():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # nothing left in the component's process group
        assert name


def check_airflow(env: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{env['CONTINUUM_AIRFLOW_PORT']}"
    status, health = http("GET", f"{base}/api/v2/monitor/health")
    assert status == 200 and health["metadatabase"]["status"] == "healthy"
    status, login = http("POST", f"{base}/auth/token", {"username": "admin", "password": "admin"})
    token = login["access_token"]
    status, pools = http("GET", f"{base}/api/v2/pools", token=token)
    assert {"continuum_training", "continuum_validation"} <= {p["name"] for p in pools["pools"]}
    if not list(settings.dags_dir().glob("*.py")):
        assert http("GET", f"{base}/api/v2/dags", token=token)[0] == 200
        return
    while True:  # parsing happens after readiness; DAGs or import errors show up within the refresh interval
        dags = http("GET", f"{base}/api/v2/dags", token=token)[1]
        errors = http("GET", f"{base}/api/v2/importErrors", token=token)[1]
        if dags["total_entries"] or errors["total_entries"]:
            break
        time.sleep(2)
    assert dags["total_entries"] > 0, f"no DAG listed; import errors: {errors['import_errors']}"
    assert not any(d["is_paused"] for d in dags["dags"])


def check_mlflow_and_s3(env: dict[str, str], home: Path) -> None:
    mlflow = f"http://127.0.0.1:{env['CONTINUUM_MLFLOW_PORT']}"
    assert urllib.request.urlopen(f"{mlflow}/health", timeout=30).status == 200
    status, created = http("POST", f"{mlflow}/api/2.0/mlflow/experiments/create", {"name": f"smoke-{uuid.uuid4().hex}"})
    experiment = http("GET", f"{mlflow}/api/2.0/mlflow/experiments/get?experiment_id={created['experiment_id']}")[1]
    assert experiment["experiment"]["artifact_location"].startswith(f"s3://{settings.mlflow_bucket()}/")
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{env['CONTINUUM_S3_PORT']}", region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
    s3.put_object(Bucket=settings.bucket(), Key="landing/smoke/batch.csv", Body=b"a\n1\n")


def test_embedded_platform_starts_serves_and_stops_on_ctrl_c(tmp_path):
    home = tmp_path / "home"
    env = platform_env(home)
    supervisor, running = start(env), {}
    try:
        running = wait_ready(supervisor, home)
        assert running["mode"] == "embedded"
        assert set(running["children"]) == {"s3", "mlflow", "api-server", "scheduler", "dag-processor", "triggerer"}
        check_airflow(env)
        check_mlflow_and_s3(env, home)
    finally:
        if supervisor.poll() is None:
            stop_and_check(supervisor, home, running.get("children", {}))
    # the final snapshot on stop kept what landed
    assert (home / "s3" / settings.bucket() / "landing" / "smoke" / "batch.csv").read_bytes() == b"a\n1\n"


def services_reachable() -> str | None:
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            return f"{name} is not reachable on 127.0.0.1:{port}"
    return None


@pytest.mark.services
def test_production_topology_runs_celery_on_postgres_and_redis(tmp_path):
    missing = services_reachable()
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"{missing} and CONTINUUM_REQUIRE_SERVICES=1")
        pytest.skip(f"{missing}; start it or run without the production topology test")
    import psycopg2

    suffix = uuid.uuid4().hex[:8]
    airflow_db, mlflow_db = f"continuum_test_airflow_{suffix}", f"continuum_test_mlflow_{suffix}"
    home = tmp_path / "home"
    env = platform_env(
        home,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{airflow_db}",
        CONTINUUM_MLFLOW_BACKEND_URI=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{mlflow_db}",
        AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:6379/13",
    )
    supervisor, running = start(env, production=True), {}
    try:
        running = wait_ready(supervisor, home)
        assert running["mode"] == "production" and "celery-worker" in running["children"]
        check_airflow(env)
        check_mlflow_and_s3(env, home)
    finally:
        if supervisor.poll() is None:
            stop_and_check(supervisor, home, running.get("children", {}))
        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in (airflow_db, mlflow_db):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
