"""
# Continuum simulator (local platform only)

Lands a simulated batch for every shipped domain and a simulated conversation log
for every shipped assistant every three minutes, so the loops run by themselves
while `make run` is up: stable batches, covariate drift, a broken batch
(quarantined), concept drift; conversations from every prompt version, with a
malformed line. The story is in `continuum.simulate.feed`.

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

from continuum_notifier import default_args

if os.environ.get("CONTINUUM_SIMULATOR") == "on":

    @dag(
        dag_id="continuum_simulator",
        schedule=timedelta(minutes=3),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["simulator", "local"],
        doc_md=__doc__,
        default_args=default_args("continuum-platform"),
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

        @task
        def shipped_assistants() -> list[str]:
            """The assistants whose conversations are simulated."""
            from continuum.llm.specs import load_assistants

            return [spec.name for spec in load_assistants()[0] if spec.name in ("shopping_assistant", "claims_assistant")]

        @task(multiple_outputs=False)
        def land_conversations(assistant: str) -> dict:
            """Land the assistant's next simulated conversation log."""
            from continuum.simulate.feed import land_conversations as land

            return land(assistant)

        land_next_batch.expand(domain=shipped_domains())
        land_conversations.expand(assistant=shipped_assistants())

    continuum_simulator()
