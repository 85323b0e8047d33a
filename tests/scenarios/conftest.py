"""Scenario fixtures: the real DAGs, run with `dag.test()` against moto S3 and a SQLite MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest


class Loop:
    """`loop.ingest(domain, frame)` lands a batch and runs the domain's DAGs; returns the decision record."""

    counter = 0

    def __init__(self, directory: Path):
        self.directory = directory

    def write(self, frame, suffix: str = ".csv") -> Path:
        from continuum import simulate

        Loop.counter += 1
        return simulate.write(frame, self.directory / f"batch-{Loop.counter}{suffix}")

    def ingest(self, domain: str, frame=None, path: Path | None = None) -> dict:
        from continuum import cli

        return cli.ingest(domain, path or self.write(frame), run=True)

    def batch(self, domain: str, n: int = 2000, seed: int = 0, faults=(), drift: float = 0.0):
        from continuum import simulate

        return simulate.generate(domain, n=n, seed=seed, faults=faults, drift=drift)


@pytest.fixture
def loop(s3, mlflow_store, airflow_db, tmp_path):
    """A Loop on this test's own buckets and MLflow store."""
    from continuum import dagrun

    _ensure_pools()
    dagrun.reset()
    return Loop(tmp_path)


@pytest.fixture(scope="module")
def module_loop(module_services, airflow_db, tmp_path_factory):
    """A Loop whose buckets and MLflow store last for the module; yields (loop, monkeypatch).

    Set the domains path with the monkeypatch, then call `dagrun.reset()`; the DAGs are
    parsed again after the module, so no other test sees its domains.
    """
    from continuum import dagrun

    _ensure_pools()
    dagrun.reset()
    yield Loop(tmp_path_factory.mktemp("batches")), module_services
    dagrun.reset()


def _ensure_pools() -> None:
    """The pools `airflow_settings.yaml` declares, as `make run` loads them."""
    from continuum.local import airflow_settings
    from continuum.settings import REPO_ROOT

    airflow_settings.apply(airflow_settings.load(REPO_ROOT / "airflow_settings.yaml"))
