"""The platform's environment: defaults from CONTINUUM_HOME, and the user's variables win."""

from __future__ import annotations

import json
import stat

import pytest

from continuum import settings
from continuum.local import environment

SECRETS = {"jwt_secret": "j" * 64, "api_secret_key": "a", "fernet_key": "f"}


def plan_for(tmp_path, production=False, **user):
    return environment.plan({"CONTINUUM_HOME": str(tmp_path), **user}, production=production, secrets=SECRETS)


def test_embedded_defaults_live_under_continuum_home(tmp_path):
    plan = plan_for(tmp_path)
    env = plan.env
    assert plan.start_s3 and plan.start_mlflow and not plan.production
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(settings.dags_dir())
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(settings.plugins_dir())
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == SECRETS["jwt_secret"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert int(env["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"]) <= 30
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert env["AWS_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1" and env["AWS_ACCESS_KEY_ID"]
    assert plan.mlflow_backend_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert plan.mlflow_artifact_root == f"s3://{settings.mlflow_bucket()}/"
    assert plan.endpoints == {
        "airflow": "http://localhost:8080",
        "mlflow": "http://localhost:5000",
        "s3": "http://localhost:9000",
    }


def test_ports_are_configurable(tmp_path):
    plan = plan_for(tmp_path, CONTINUUM_AIRFLOW_PORT="18080", CONTINUUM_MLFLOW_PORT="15000", CONTINUUM_S3_PORT="19000")
    assert plan.ports == environment.Ports(airflow=18080, mlflow=15000, s3=19000)
    assert plan.env["AIRFLOW__API__PORT"] == "18080"
    assert plan.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert plan.env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15000"
    assert plan.env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:19000"


def test_a_bad_port_names_the_variable(tmp_path):
    with pytest.raises(ValueError, match="CONTINUUM_S3_PORT"):
        plan_for(tmp_path, CONTINUUM_S3_PORT="nine")


def test_users_mlflow_and_s3_win_and_are_not_started(tmp_path):
    plan = plan_for(tmp_path, MLFLOW_TRACKING_URI="http://mlflow.example:5000", AWS_ENDPOINT_URL="http://minio:9000")
    assert not plan.start_mlflow and not plan.start_s3
    assert plan.env["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert plan.env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "AWS_ACCESS_KEY_ID" not in plan.env  # the user's own credentials chain applies
    assert plan.endpoints["s3"] == "http://minio:9000"


def test_s3_specific_endpoint_also_counts_as_users(tmp_path):
    plan = plan_for(tmp_path, AWS_ENDPOINT_URL_S3="https://s3.eu-west-1.amazonaws.com")
    assert not plan.start_s3
    assert plan.env["MLFLOW_S3_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"


def test_users_airflow_home_and_settings_win(tmp_path):
    own = tmp_path / "my-airflow"
    plan = plan_for(tmp_path, AIRFLOW_HOME=str(own), AIRFLOW__CORE__LOAD_EXAMPLES="True")
    assert plan.airflow_home == own
    assert plan.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{own / 'airflow.db'}"
    assert plan.env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "True"


def test_production_uses_celery_postgres_and_redis(tmp_path):
    plan = plan_for(tmp_path, production=True)
    env = plan.env
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://postgres@127.0.0.1:5432/continuum_airflow"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "120"  # a dead worker's tasks retry in 2 min
    assert plan.mlflow_backend_uri == "postgresql+psycopg2://postgres@127.0.0.1:5432/continuum_mlflow"


def test_production_database_override_also_moves_the_result_backend(tmp_path):
    own = "postgresql+psycopg2://postgres@db:5432/other"
    plan = plan_for(tmp_path, production=True, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=own)
    assert plan.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == own
    assert plan.env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{own}"


def test_secrets_are_generated_once_and_private(tmp_path):
    first = environment.load_or_create_secrets(tmp_path)
    assert first == environment.load_or_create_secrets(tmp_path)
    assert len(first["jwt_secret"]) >= 64 and first["api_secret_key"] and first["fernet_key"]
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600


def test_passwords_file_holds_the_fixed_login_and_keeps_other_users(tmp_path):
    path = tmp_path / "passwords.json"
    path.write_text(json.dumps({"admin": "generated", "bob": "secret"}))
    environment.write_passwords_file(path)
    assert json.loads(path.read_text()) == {"admin": "admin", "bob": "secret"}


def test_events_mode_on_the_embedded_s3_names_its_queue_and_the_triggers_connection(tmp_path):
    from continuum.local.platform import children

    plan = plan_for(tmp_path, CONTINUUM_LANDING_MODE="events", CONTINUUM_S3_PORT="19000")
    assert plan.env["CONTINUUM_LANDING_QUEUE"] == "http://127.0.0.1:19000/123456789012/continuum-landing"
    connection = json.loads(plan.env["AIRFLOW_CONN_CONTINUUM_LANDING_EVENTS"])
    assert connection["conn_type"] == "aws" and connection["extra"]["endpoint_url"] == "http://127.0.0.1:19000"
    [s3] = [c for c in children(plan, tmp_path) if c.name == "s3"]
    assert s3.command[-2:] == ["--landing-queue", "continuum-landing"]
    # poll mode, or events mode with your own S3: nothing of the kind is invented
    for user in ({}, {"CONTINUUM_LANDING_MODE": "events", "AWS_ENDPOINT_URL": "http://minio:9000"}):
        plan = plan_for(tmp_path, **user)
        assert "CONTINUUM_LANDING_QUEUE" not in plan.env and "AIRFLOW_CONN_CONTINUUM_LANDING_EVENTS" not in plan.env
    with pytest.raises(ValueError, match="CONTINUUM_LANDING_MODE='push'"):
        settings.landing_mode({"CONTINUUM_LANDING_MODE": "push"})
