"""Preconditions fail early with one line that says what to do."""

from __future__ import annotations

import json
import os
import socket

import pytest

from continuum.local import environment, preflight, state
from continuum.local.preflight import PreflightError

SECRETS = {"jwt_secret": "j" * 64, "api_secret_key": "a", "fernet_key": "f"}


@pytest.fixture
def listening():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def plan_for(tmp_path, **user):
    return environment.plan({"CONTINUUM_HOME": str(tmp_path), "PATH": os.environ["PATH"], **user}, secrets=SECRETS)


def test_a_taken_port_names_the_process_and_the_variable(tmp_path, listening):
    plan = plan_for(tmp_path, CONTINUUM_AIRFLOW_PORT=str(listening))
    with pytest.raises(PreflightError) as error:
        preflight.check_ports(plan)
    message = str(error.value)
    assert f"port {listening} (Airflow UI/API) is already in use" in message
    assert f"pid {os.getpid()}" in message and f"kill {os.getpid()}" in message
    assert "CONTINUUM_AIRFLOW_PORT" in message and "\n" not in message


def test_a_taken_s3_port_suggests_the_users_own_s3(tmp_path, listening):
    with pytest.raises(PreflightError, match="CONTINUUM_S3_PORT.*AWS_ENDPOINT_URL"):
        preflight.check_ports(plan_for(tmp_path, CONTINUUM_S3_PORT=str(listening)))


def test_ports_of_services_not_started_are_not_checked(tmp_path, listening):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    plan = plan_for(tmp_path, CONTINUUM_S3_PORT=str(listening), CONTINUUM_MLFLOW_PORT=str(listening),
                    CONTINUUM_AIRFLOW_PORT=str(free), AWS_ENDPOINT_URL="http://minio:9000",
                    MLFLOW_TRACKING_URI="http://mlflow:5000")
    preflight.check_ports(plan)


def test_a_running_platform_is_reported_and_a_stale_state_file_ignored(tmp_path):
    plan = plan_for(tmp_path)
    state.write(tmp_path, {"pid": os.getpid(), "endpoints": {"airflow": "http://localhost:8080"}})
    with pytest.raises(PreflightError, match=f"already running .*pid {os.getpid()}"):
        preflight.check_not_running(plan)
    state.write(tmp_path, {"pid": 2**22 + 12345})  # beyond pid_max: never alive
    preflight.check_not_running(plan)


def test_a_corrupt_airflow_db_says_to_delete_the_half_initialised_home(tmp_path):
    plan = plan_for(tmp_path)
    plan.airflow_home.mkdir(parents=True)
    (plan.airflow_home / "airflow.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(PreflightError) as error:
        preflight.migrate_airflow_db(plan, tmp_path / "logs")
    message = str(error.value)
    assert f"rm -rf {plan.airflow_home}" in message and "airflow-db-migrate.log" in message
    assert (tmp_path / "logs" / "airflow-db-migrate.log").stat().st_size > 0


def test_state_file_round_trip(tmp_path):
    state.write(tmp_path, {"pid": os.getpid(), "mode": "embedded"})
    assert state.running(tmp_path)["mode"] == "embedded"
    assert json.loads(state.path(tmp_path).read_text())["pid"] == os.getpid()
    state.remove(tmp_path)
    assert state.running(tmp_path) is None
