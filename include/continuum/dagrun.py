"""Run the project's real DAGs in-process with `dag.test()`.

This is how `continuum ingest --run` and the scenario tests drive the loop: the
very DAG objects the scheduler runs, parsed from `dags/` by Airflow's DagBag,
never a second code path. It is the one Airflow adapter in the package.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys

from continuum import settings

log = logging.getLogger(__name__)


class DagRunFailed(RuntimeError):
    pass


@functools.cache
def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(settings.dags_dir()))
    if bag.import_errors:
        problems = "; ".join(f"{path}: {error.strip().splitlines()[-1]}" for path, error in bag.import_errors.items())
        log.warning("event=dag_import_errors errors=%r", problems)
    return bag


def get_dag(dag_id: str):
    dag = _dagbag().dags.get(dag_id)
    if dag is None:
        known = ", ".join(sorted(_dagbag().dag_ids)) or "none"
        raise KeyError(f"no DAG '{dag_id}' in {settings.dags_dir()} (known: {known})")
    return dag


@contextlib.contextmanager
def _without_deadline(dag):
    """The DAG with its `DeadlineAlert`s set aside while it runs in-process.

    Airflow 3.3.2's `dag.test()` fails a successful run of a DAG that has a deadline
    (see `continuum_notifier.deadline_alert`). An in-process run has its caller
    waiting on it, so nobody needs paging for it; the scheduler's runs keep the deadline.
    """
    deadline = dag.deadline
    dag.deadline = None
    try:
        yield dag
    finally:
        dag.deadline = deadline


def run(dag_id: str, conf: dict | None = None) -> str:
    """Run one DAG to completion; returns its final state, raises DagRunFailed when it failed."""
    # Task logs go to stderr: stdout is for what the command prints (the decision record).
    with contextlib.redirect_stdout(sys.stderr), _without_deadline(get_dag(dag_id)) as dag:
        dag_run = dag.test(run_conf=conf or {})
    state = str(getattr(dag_run, "state", "unknown"))
    log.info("event=dag_test dag_id=%s state=%s", dag_id, state)
    if state != "success":
        raise DagRunFailed(f"DAG {dag_id} ended {state}: see the task logs above or in the Airflow UI")
    return state


def reset() -> None:
    """Forget parsed DAGs (after the domains path changed)."""
    _dagbag.cache_clear()


class NothingWaiting(LookupError):
    """No task of that DAG run is waiting for a person's answer."""


def answer(dag_id: str, run_id: str, task_id: str, chosen: list[str], by: str, params_input: dict) -> None:
    """Answer a human-in-the-loop task parked in AWAITING_INPUT, as the Airflow UI's "Required actions" does.

    It calls the REST API's own handler (`update_hitl_detail`) on the metadata database, so
    the answer is checked (allowed options, answered once) and the task resumes exactly as
    from the UI. `by` is recorded as the responding user. Works for the platform's runs and
    for a `continuum ingest --run` waiting in `dag.test()` (they share the metadata database).
    """
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from fastapi import HTTPException

    with create_session() as session:
        waiting = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one_or_none()
        if waiting is None or waiting.state != TaskInstanceState.AWAITING_INPUT:
            state = "not found" if waiting is None else f"in state {waiting.state}"
            raise NothingWaiting(f"{dag_id} run {run_id}: task {task_id} is {state}, not waiting for an answer")
        try:
            update_hitl_detail(
                dag_id=dag_id,
                dag_run_id=run_id,
                task_id=task_id,
                update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=chosen, params_input=params_input),
                user=SimpleAuthManagerUser(username=by, role="user"),
                session=session,
                map_index=-1,
            )
        except HTTPException as exc:
            raise NothingWaiting(f"{dag_id} run {run_id}: {exc.detail}") from exc
    log.info("event=hitl_answer dag_id=%s run_id=%s task_id=%s chosen=%s by=%s", dag_id, run_id, task_id, chosen, by)
