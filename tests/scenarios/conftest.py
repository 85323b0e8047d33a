"""Scenario fixtures: the real DAGs, run with `dag.test()` against moto S3 and a SQLite MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def loop(s3, mlflow_store, airflow_db, tmp_path):
    """`loop.ingest(domain, frame)` lands a batch and runs the domain's DAGs; returns the decision record."""
    from continuum import cli, dagrun, simulate

    _ensure_pools()

    class Loop:
        counter = 0

        def write(self, frame, suffix: str = ".csv") -> Path:
            Loop.counter += 1
            return simulate.write(frame, tmp_path / f"batch-{Loop.counter}{suffix}")

        def ingest(self, domain: str, frame=None, path: Path | None = None) -> dict:
            return cli.ingest(domain, path or self.write(frame), run=True)

        def batch(self, domain: str, n: int = 2000, seed: int = 0, faults=(), drift: float = 0.0):
            return simulate.generate(domain, n=n, seed=seed, faults=faults, drift=drift)

    dagrun.reset()
    return Loop()


def _ensure_pools() -> None:
    """The pools `airflow_settings.yaml` declares, as `make run` loads them."""
    from continuum.local import airflow_settings
    from continuum.settings import REPO_ROOT

    airflow_settings.apply(airflow_settings.load(REPO_ROOT / "airflow_settings.yaml"))
