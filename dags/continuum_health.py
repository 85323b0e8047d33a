"""
# Continuum health (hourly)

Checks what no task failure reveals, for every domain and assistant:

| check | alert kind | from |
|---|---|---|
| champion older than the spec's `schedule` allows | `model_stale` | MLflow `champion` alias |
| no new batch / conversation log for longer than `monitoring.expected_every` | `data_missing` | S3 manifests |
| the current champion's newest realised metric (late labels) under `monitoring.floor` / worse than its holdout by more than `monitoring.max_realised_gap` | `champion_below_floor` / `realised_gap` | `realised/<domain>/` |
| production prompt's safety rates over the last day above `monitoring.max_safety_rate` | `prompt_guardrail_breach` | `llm/scores/`, `llm/decisions/` |
| DAG runs of the domain that failed in the last hour | `task_failed` | Airflow's API (failed run counts) |
| the run that missed its deadline has ended | `resolved` for `deadline_missed` | Airflow's API (run states) |
| a new champion replaced the one late labels judged | `resolved` for `champion_below_floor` / `realised_gap` | MLflow `champion` alias |

With `retrain_on_schedule: true` in a domain's spec, a stale champion also gets a retrain
queued under `queue/<domain>/`, which `<domain>_decide` performs (on the labelled batches
the champion never learnt from; with none, its decision record says `waiting_for_labels`).

Every alert names the `check` task's run, try and log link.
A firing condition alerts the owner (routes: Airflow Variable `continuum_alert_routes`);
one that clears sends `resolved` once. The hour's digest is written to
`s3://<bucket>/health/<YYYY-MM-DDTHH>.json` and `.html`.

**When it fails.** A check raises on a transient error (MLflow, S3) so Airflow retries
it; each domain is its own mapped task, so one broken domain does not hide the others.
Reruns are safe: alerts are keyed by the hour. See `docs/runbook.md`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from continuum_notifier import default_args


def _now(context) -> pendulum.DateTime:
    """The hour this run checks: its data interval's end (now, for a manual run without one)."""
    return context.get("data_interval_end") or pendulum.now("UTC")


@dag(
    dag_id="continuum_health",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    tags=["continuum", "health", "on-call"],
    doc_md=__doc__,
    default_args=default_args("continuum-platform"),
)
def continuum_health():
    @task(multiple_outputs=False)
    def failed_runs_last_hour() -> dict[str, int]:
        """Failed DAG runs per domain/assistant since the previous health run (Airflow's execution API)."""
        from continuum import health

        context = get_current_context()
        now = _now(context)
        ti = context["ti"]
        totals = {
            entry["name"]: sum(ti.get_dr_count(dag_id=dag_id, states=["failed"]) for dag_id in entry["dags"])
            for entry in health.names()
        }
        return health.new_failed_runs(totals, now)

    @task
    def names() -> list[str]:
        """Every valid domain and assistant (broken specs are reported by continuum_spec_errors)."""
        from continuum import health

        return [entry["name"] for entry in health.names()]

    @task(multiple_outputs=False)
    def check(name: str, failed: dict[str, int]) -> dict:
        """Model age, data freshness, prompt guardrails, failures and late runs of one domain or assistant."""
        from continuum import health
        from continuum.alerts import task_location

        context = get_current_context()
        ti = context["ti"]

        def run_unfinished(dag_id: str, run_id: str) -> bool:
            return ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=["queued", "running"]) > 0

        return health.check(
            name, _now(context), failed_runs=failed.get(name, 0), where=task_location(context),
            run_unfinished=run_unfinished,
        )

    @task(multiple_outputs=False, trigger_rule="all_done")
    def digest(entries: list[dict]) -> dict:
        """The hour's digest (JSON and HTML) under health/, including the checks that did run."""
        from continuum import health

        now = _now(get_current_context())
        return health.write_digest([e for e in entries if e], now)

    failed = failed_runs_last_hour()
    digest(check.partial(failed=failed).expand(name=names()))


continuum_health()
