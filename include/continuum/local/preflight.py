"""Checks run before anything starts, each failing with one line that says what to do.

A platform that half-starts and then dies in a wall of tracebacks is the worst local
experience; every precondition we can test cheaply is tested here first.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from continuum.local import state
from continuum.local.environment import PORT_VARS, Plan


class PreflightError(RuntimeError):
    """A precondition the user can fix; the message is the one line to print."""


SERVICE_LABEL = {"airflow": "Airflow UI/API", "mlflow": "MLflow", "s3": "the S3 endpoint"}
OWN_SERVICE_HINT = {
    "airflow": "",
    "mlflow": " or set MLFLOW_TRACKING_URI to use your own MLflow",
    "s3": " or set AWS_ENDPOINT_URL to use your own S3",
}


def port_owner(port: int) -> str | None:
    """'pid 123 (airflow api-server)' for the process listening on `port`, when we may know it."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                command = " ".join(proc.cmdline()[:3]) or proc.name()
                return f"pid {conn.pid} ({command})"
    except Exception:  # noqa: BLE001 - knowing the owner is a nicety; the port check itself stands
        return None
    return None


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_taken_message(service: str, port: int) -> str:
    owner = port_owner(port)
    who = f" by {owner}" if owner else ""
    stop = f"stop it (kill {owner.split()[1]})" if owner else "stop the process using it"
    return (
        f"port {port} ({SERVICE_LABEL[service]}) is already in use{who}; "
        f"{stop}, or set {PORT_VARS[service]} to a free port{OWN_SERVICE_HINT[service]}"
    )


def check_ports(plan: Plan) -> None:
    wanted = {"airflow": plan.ports.airflow}
    if plan.start_mlflow:
        wanted["mlflow"] = plan.ports.mlflow
    if plan.start_s3:
        wanted["s3"] = plan.ports.s3
    for service, port in wanted.items():
        if port_in_use(port):
            raise PreflightError(port_taken_message(service, port))


def check_not_running(plan: Plan) -> None:
    current = state.running(plan.home)
    if current:
        raise PreflightError(
            f"the platform is already running for {plan.home} (pid {current['pid']}, "
            f"Airflow at {current.get('endpoints', {}).get('airflow')}); use it, or stop it with "
            f"Ctrl-C in its terminal (or kill {current['pid']})"
        )


def check_dependencies(plan: Plan) -> None:
    bin_dir = Path(sys.executable).parent
    for tool in ("airflow", "mlflow"):
        if not (bin_dir / tool).exists() and shutil.which(tool) is None:
            raise PreflightError(f"the `{tool}` command is missing from {bin_dir}; run `make install`")
    modules = ["moto.server", "flask"] if plan.start_s3 else []
    if plan.production:
        modules += ["airflow.providers.celery", "airflow.providers.fab", "psycopg2", "redis"]
    for module in modules:
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            raise PreflightError(f"Python package `{module}` is not installed; run `make install`")


def check_celery_executor(plan: Plan) -> None:
    """Import the Celery executor as the scheduler will; a broken install fails here in one line."""
    code = "import airflow.providers.celery.executors.celery_executor"
    result = subprocess.run([sys.executable, "-c", code], env=plan.env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PreflightError(
            f"the Celery executor cannot be imported ({last}); fix the dependency pins "
            "(requirements.in) and run `make install`"
        )


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def check_production_services(plan: Plan) -> None:
    """Postgres and Redis must answer, and the databases exist (created here if missing)."""
    broker = urlsplit(plan.env["AIRFLOW__CELERY__BROKER_URL"])
    if broker.scheme.startswith("redis") and not _reachable(broker.hostname or "127.0.0.1", broker.port or 6379):
        raise PreflightError(
            f"Redis is not reachable at {broker.hostname}:{broker.port or 6379}; start it "
            "(e.g. `sudo service redis-server start`) or set AIRFLOW__CELERY__BROKER_URL"
        )
    for url, var in (
        (plan.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
        (plan.mlflow_backend_uri if plan.start_mlflow else "", "CONTINUUM_MLFLOW_BACKEND_URI"),
    ):
        if url.startswith("postgresql"):
            ensure_postgres_database(url, var)


def ensure_postgres_database(url: str, var: str) -> None:
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "password": parts.password,
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    try:
        conn = psycopg2.connect(**{k: v for k, v in admin.items() if v is not None})
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise PreflightError(
            f"PostgreSQL is not reachable at {admin['host']}:{admin['port']} ({first}); start it "
            f"(e.g. `sudo service postgresql start`) or set {var}"
        ) from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def run_logged(command: list[str], env: dict[str, str], log_path: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode


def migrate_airflow_db(plan: Plan, log_dir: Path) -> None:
    """`airflow db migrate`; a failure on a leftover SQLite DB says how to start afresh."""
    plan.airflow_home.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "airflow-db-migrate.log"
    airflow = str(Path(sys.executable).parent / "airflow")
    if run_logged([airflow, "db", "migrate"], plan.env, log_path) == 0:
        return
    database = plan.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if database.startswith("sqlite"):
        fix = f"if {plan.airflow_home} is a half-initialised leftover, delete it (rm -rf {plan.airflow_home}) and start again"
    else:
        fix = f"check that {database.split('@')[-1]} is reachable and yours, then run `airflow db migrate` by hand"
    raise PreflightError(f"`airflow db migrate` failed (log: {log_path}); {fix}")


def load_airflow_settings(plan: Plan, settings_file: Path, log_dir: Path) -> None:
    log_path = log_dir / "airflow-settings.log"
    command = [sys.executable, "-m", "continuum.local.airflow_settings", str(settings_file)]
    if run_logged(command, plan.env, log_path) != 0:
        last = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
        raise PreflightError(f"loading {settings_file.name} failed: {last[0]} (log: {log_path})")
