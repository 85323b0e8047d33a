"""`embedded_services()`: the platform's services for CLI commands run outside `make run`.

A command such as `continuum land` or `continuum run-dag` must work whether or not the
platform is running, and must see the same data either way:
- platform running (its platform.json names a live pid): use its endpoints;
- otherwise: start the embedded S3 in-process on a free port (restoring the snapshot
  and saving it on exit) and use MLflow's SQLite store directly, the same DB file the
  MLflow server uses, with artefacts in the same S3 bucket.
Variables the user has set always win. The Airflow environment is exported too, and a
missing SQLite metadata DB is migrated, so `dag.test()` works in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Generator
from contextlib import contextmanager, suppress
from pathlib import Path

from continuum.local import environment, state


class ServicesError(RuntimeError):
    pass


def _clear_clients() -> None:
    """boto3 clients are cached in storage; a new endpoint needs a new client."""
    with suppress(ImportError):
        from continuum import storage

        storage.client.cache_clear()


def migrate_if_missing(env: dict[str, str]) -> bool:
    """Run `airflow db migrate` when the SQLite metadata DB does not exist yet; True if it ran."""
    database = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not database.startswith("sqlite:///"):
        return False
    path = Path(database.removeprefix("sqlite:///"))
    if path.exists() and path.stat().st_size > 0:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        path.unlink(missing_ok=True)  # never leave a half-initialised DB behind
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ServicesError(f"`airflow db migrate` failed for {path}: {last[0]}; delete {path.parent} and retry")
    return True


@contextmanager
def embedded_services(migrate: bool = True) -> Generator[dict[str, str], None, None]:
    """Export the endpoints (and start what is missing) for the duration of the block.

    Yields the variables it set. On exit the embedded S3 (if started here) writes its
    snapshot and stops, and os.environ is restored.
    """
    from continuum.local.s3server import EmbeddedS3

    saved = dict(os.environ)
    user = dict(os.environ)
    home = environment.home(user)
    exported: dict[str, str] = {"CONTINUUM_HOME": str(home)}
    server: EmbeddedS3 | None = None
    try:
        platform = state.running(home)
        if platform:
            exported |= platform.get("env", {})
            if "AWS_ENDPOINT_URL" in exported:
                exported |= environment.DUMMY_AWS | {"AWS_DEFAULT_REGION": "us-east-1"}
        else:
            endpoint = environment.user_s3_endpoint(user)
            if endpoint is None:
                buckets = [environment.bucket(user), environment.mlflow_bucket(user)]
                server = EmbeddedS3(home / "s3", port=0, buckets=buckets)
                endpoint = server.start()
                exported |= {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
                exported |= environment.DUMMY_AWS
            exported["MLFLOW_S3_ENDPOINT_URL"] = endpoint
            if "MLFLOW_TRACKING_URI" not in user:
                (home / "mlflow").mkdir(parents=True, exist_ok=True)
                exported["MLFLOW_TRACKING_URI"] = environment.mlflow_backend_uri(user)
                exported["CONTINUUM_MLFLOW_ARTIFACTS"] = f"s3://{environment.mlflow_bucket(user)}/"
        secrets = environment.load_or_create_secrets(home)
        exported = environment.airflow_env(user | exported, environment.ports(user), secrets) | exported
        exported = {k: v for k, v in exported.items() if k not in user}  # the user's variables win
        os.environ.update(exported)
        _clear_clients()
        if migrate:
            migrate_if_missing(dict(os.environ))
        yield exported
    finally:
        try:
            if server is not None:
                server.stop()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            _clear_clients()
