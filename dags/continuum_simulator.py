"""
# Continuum simulator (local platform only)

Lands a simulated batch for every shipped domain every three minutes, so the loop
runs by itself while `make run` is up: stable batches, covariate drift, a broken
batch (quarantined), concept drift. The story is in `continuum.simulate.feed`.

This DAG exists only when `CONTINUUM_SIMULATOR=on` (set by `make run`); production
stacks never see it.

**When it fails.** Nothing downstream is harmed: the next run lands the next batch.
Check S3 (`AWS_ENDPOINT_URL`) and the task log. See `docs/runbook.md`.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from continuum_notifier import ContinuumNotifier

if os.environ.get("CONTINUUM_SIMULATOR") == "on":

    @dag(
        dag_id="continuum_simulator",
        schedule=timedelta(minutes=3),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["simulator", "local"],
        doc_md=__doc__,
        default_args={
            "owner": "continuum-platform",
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
            "on_failure_callback": ContinuumNotifier(),
        },
    )
    def continuum_simulator():
        @task
        def shipped_domains() -> list[str]:
            """The domains that have a simulator."""
            from continuum import simulate
            from continuum.specs import load_domains

            return [spec.name for spec in load_domains()[0] if spec.name in simulate.DOMAINS]

        @task(multiple_outputs=False)
        def land_next_batch(domain: str) -> dict:
            """Land the domain's next batch of the story."""
            from continuum.simulate.feed import land_next

            return land_next(domain)

        land_next_batch.expand(domain=shipped_domains())

    continuum_simulator()
