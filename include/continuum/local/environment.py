"""The environment of every platform component, computed from `CONTINUUM_HOME`.

Everything here is a pure function of the user's environment (plus the secrets read
once from disk), so the supervisor, the CLI and the tests agree on one configuration.
The rule that makes the embedded platform safe to combine with real services: a
variable the user has already set always wins, and if the user points at their own
MLflow (`MLFLOW_TRACKING_URI`) or S3 (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`), the
embedded one is not started.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from continuum import settings

HOST = "127.0.0.1"
PORT_VARS = {"airflow": "CONTINUUM_AIRFLOW_PORT", "mlflow": "CONTINUUM_MLFLOW_PORT", "s3": "CONTINUUM_S3_PORT"}
DEFAULT_PORTS = {"airflow": 8080, "mlflow": 5000, "s3": 9000}
ADMIN_LOGIN = ("admin", "admin")  # local development only: the API server binds to loopback
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# Production (`make up-prod`, compose, Helm): real users and roles. The admin user comes
# from these variables (the official image's names); set them to your own values.
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
ADMIN_USER_VARS = ("_AIRFLOW_WWW_USER_USERNAME", "_AIRFLOW_WWW_USER_PASSWORD")

# Seconds without a heartbeat before the scheduler retries a task in production (compose sets the same).
TASK_HEARTBEAT_TIMEOUT = "120"
# Production topology without Docker: the local PostgreSQL and Redis services.
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
AIRFLOW_PG_DB = "continuum_airflow"
MLFLOW_PG_DB = "continuum_mlflow"
REDIS_BROKER = "redis://127.0.0.1:6379/0"

# Events mode on the embedded S3: moto's SQS queue. moto's default account makes its URL
# known before the queue exists, so every component gets it in its environment.
LANDING_QUEUE = "continuum-landing"
MOTO_ACCOUNT = "123456789012"

DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "continuum", "AWS_SECRET_ACCESS_KEY": "continuum"}


@dataclass(frozen=True)
class Ports:
    airflow: int
    mlflow: int
    s3: int


@dataclass(frozen=True)
class Plan:
    """What the platform runs and the complete environment every child process gets."""

    env: dict[str, str]
    production: bool
    ports: Ports
    home: Path
    airflow_home: Path
    start_s3: bool
    start_mlflow: bool
    mlflow_backend_uri: str
    mlflow_artifact_root: str
    endpoints: dict[str, str] = field(default_factory=dict)


def ports(environ: Mapping[str, str]) -> Ports:
    """Ports from `CONTINUUM_*_PORT`, so a second platform (or the tests) can run beside the first."""
    values = {}
    for name, var in PORT_VARS.items():
        raw = environ.get(var) or str(DEFAULT_PORTS[name])
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ValueError(f"{var}={raw!r} is not a port number; set it to a free port such as 18080")
        values[name] = int(raw)
    return Ports(**values)


def home(environ: Mapping[str, str]) -> Path:
    """`CONTINUUM_HOME` of the given environment (settings.home() reads os.environ)."""
    return Path(environ.get("CONTINUUM_HOME") or settings.REPO_ROOT / ".continuum").resolve()


def airflow_home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("AIRFLOW_HOME") or home(environ) / "airflow").resolve()


def user_s3_endpoint(environ: Mapping[str, str]) -> str | None:
    return environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None


def airflow_env(
    environ: Mapping[str, str], ports_: Ports, secrets: Mapping[str, str], production: bool = False
) -> dict[str, str]:
    """Airflow's configuration as `AIRFLOW__*` variables (defaults only: the caller lets the user win)."""
    af_home = airflow_home(environ)
    env = {
        "AIRFLOW_HOME": str(af_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir()),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.plugins_dir()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # LocalExecutor forks one process per running task: keep it near the core count.
        "AIRFLOW__CORE__PARALLELISM": str(max(4, 2 * (os.cpu_count() or 2))),
        "AIRFLOW__CORE__FERNET_KEY": secrets["fernet_key"],
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_LOGIN[0]}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(af_home)),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{ports_.airflow}/execution/",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(ports_.airflow),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets["jwt_secret"],
        # New DAG files appear in the UI within seconds, not the default five minutes
        # (edits to known files are picked up every 30 s, the default).
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
    }
    if production:
        database = f"{POSTGRES}/{AIRFLOW_PG_DB}"
        env |= {
            "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
            # Loopback only, like `make run`; the user's own values win (see plan()).
            ADMIN_USER_VARS[0]: ADMIN_LOGIN[0],
            ADMIN_USER_VARS[1]: ADMIN_LOGIN[1],
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CELERY__BROKER_URL": REDIS_BROKER,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + environ.get(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", database
            ),
            # A task on a worker that died is retried once its heartbeat (every 5 s) is this old:
            # 2 minutes instead of Airflow's 5, and still 24 heartbeats of slack on a busy machine.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": TASK_HEARTBEAT_TIMEOUT,
        }
    else:
        env |= {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af_home / 'airflow.db'}",
        }
    return env


def s3_env(environ: Mapping[str, str], ports_: Ports) -> dict[str, str]:
    """boto3's standard variables; dummy credentials only for the embedded endpoint."""
    endpoint = user_s3_endpoint(environ)
    env = {"AWS_DEFAULT_REGION": "us-east-1"}
    if endpoint is None:
        endpoint = f"http://{HOST}:{ports_.s3}"
        env |= {"AWS_ENDPOINT_URL": endpoint} | DUMMY_AWS
    env["MLFLOW_S3_ENDPOINT_URL"] = endpoint
    return env


def landing_env(environ: Mapping[str, str], ports_: Ports) -> dict[str, str]:
    """Events mode on the embedded S3: the URL of its SQS queue and the trigger's connection to it.

    The connection names the endpoint and the dummy credentials itself (an `AIRFLOW_CONN_*`
    variable, because the port is only known here), so the trigger never falls back to
    whatever AWS configuration the triggerer's machine has. With your own S3 endpoint, set
    `CONTINUUM_LANDING_QUEUE` and the connection yourself (README, "Event-driven landing").
    """
    if settings.landing_mode(environ) != "events" or user_s3_endpoint(environ):
        return {}
    endpoint = f"http://{HOST}:{ports_.s3}"
    connection = {
        "conn_type": "aws",
        # Any credentials do for moto; not DUMMY_AWS's, because Airflow masks a connection's password
        # in every log line, and "continuum" would then read "***" all over the triggerer's log.
        "login": "embedded-moto",
        "password": "embedded-moto-secret",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    return {
        "CONTINUUM_LANDING_QUEUE": f"{endpoint}/{MOTO_ACCOUNT}/{LANDING_QUEUE}",
        f"AIRFLOW_CONN_{settings.LANDING_EVENTS_CONN_ID.upper()}": json.dumps(connection),
    }


def mlflow_backend_uri(environ: Mapping[str, str], production: bool = False) -> str:
    """The MLflow server's store; `CONTINUUM_MLFLOW_BACKEND_URI` overrides it (tests, other databases)."""
    if environ.get("CONTINUUM_MLFLOW_BACKEND_URI"):
        return environ["CONTINUUM_MLFLOW_BACKEND_URI"]
    if production:
        return f"{POSTGRES}/{MLFLOW_PG_DB}"
    return f"sqlite:///{home(environ) / 'mlflow' / 'mlflow.db'}"


def mlflow_env(environ: Mapping[str, str], ports_: Ports) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"http://{HOST}:{ports_.mlflow}",
        # Where Continuum creates experiments when MLflow is a local SQLite store (CLI, tests).
        "CONTINUUM_MLFLOW_ARTIFACTS": f"s3://{mlflow_bucket(environ)}/",
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # Scikit-learn's OpenMP threads oversubscribe a small machine shared by parallel tasks
        # (measured: HistGradientBoosting 32 s vs 0.4 s on 2 busy cores).
        "OMP_NUM_THREADS": "1",
    }


def mlflow_bucket(environ: Mapping[str, str]) -> str:
    return environ.get("CONTINUUM_MLFLOW_BUCKET") or settings.mlflow_bucket()


def bucket(environ: Mapping[str, str]) -> str:
    return environ.get("CONTINUUM_BUCKET") or settings.bucket()


def plan(
    environ: Mapping[str, str] | None = None, production: bool = False, secrets: Mapping[str, str] | None = None
) -> Plan:
    """The whole platform configuration; `secrets` defaults to those stored under CONTINUUM_HOME."""
    environ = dict(os.environ if environ is None else environ)
    home_ = home(environ)
    ports_ = ports(environ)
    secrets = secrets if secrets is not None else load_or_create_secrets(home_)
    ours = {"CONTINUUM_HOME": str(home_)}
    if not production:
        ours["CONTINUUM_SIMULATOR"] = "on"  # the local platform feeds itself simulated batches
    ours |= airflow_env(environ, ports_, secrets, production)
    ours |= s3_env(environ, ports_)
    ours |= landing_env(environ, ports_)
    ours |= mlflow_env(environ, ports_)
    env = ours | environ  # the user's variables win
    env |= settings.client_env(env)  # bounded client retries, and the pickle guard pinned off
    endpoints = {
        "airflow": f"http://localhost:{ports_.airflow}",
        "mlflow": env["MLFLOW_TRACKING_URI"].replace(f"http://{HOST}:", "http://localhost:"),
        "s3": env.get("AWS_ENDPOINT_URL_S3") or env["AWS_ENDPOINT_URL"],
    }
    endpoints["s3"] = endpoints["s3"].replace(f"http://{HOST}:", "http://localhost:")
    return Plan(
        env=env,
        production=production,
        ports=ports_,
        home=home_,
        airflow_home=airflow_home(environ),
        start_s3=user_s3_endpoint(environ) is None,
        start_mlflow="MLFLOW_TRACKING_URI" not in environ,
        mlflow_backend_uri=mlflow_backend_uri(environ, production),
        mlflow_artifact_root=f"s3://{mlflow_bucket(environ)}/",
        endpoints=endpoints,
    )


def passwords_file(af_home: Path) -> Path:
    return af_home / "simple_auth_manager_passwords.json"


def write_passwords_file(path: Path) -> None:
    """The fixed local login, so the banner can print it (SimpleAuthManager would invent one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    current = {}
    if path.exists():
        try:
            current = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError:
            current = {}
    if current.get(ADMIN_LOGIN[0]) != ADMIN_LOGIN[1]:
        path.write_text(json.dumps(current | {ADMIN_LOGIN[0]: ADMIN_LOGIN[1]}) + "\n")


def load_or_create_secrets(home_: Path) -> dict[str, str]:
    """Secrets generated once per CONTINUUM_HOME: restarts keep sessions, tokens and encrypted fields."""
    path = home_ / "secrets.json"
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError:
            stored = {}
    wanted = {
        # >= 64 bytes: Airflow signs with HS512 and warns about shorter keys.
        "jwt_secret": lambda: _secrets.token_urlsafe(64),
        "api_secret_key": lambda: _secrets.token_urlsafe(32),
        "fernet_key": lambda: base64.urlsafe_b64encode(_secrets.token_bytes(32)).decode(),
    }
    too_short = len(stored.get("jwt_secret", "")) < 64
    missing = {name: make() for name, make in wanted.items() if not stored.get(name) or (name == "jwt_secret" and too_short)}
    if missing:
        stored |= missing
        home_.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=2) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    return stored
