"""A decide run that hangs pages its owner, through Airflow's own deadline machinery.

The DAG is parsed from dags/ and written to the metadata DB as the DAG processor does;
the run is created from the serialized DAG as the scheduler does, which evaluates its
`DeadlineAlert` (`RecentRuntimeDeadline`, sized from the runs already in the DB). The
run then hangs (its DAG is paused, so nothing starts its tasks) past its deadline, and
the scheduler's steps take over: `Deadline.handle_miss` queues the callback,
`SchedulerJobRunner._enqueue_executor_callbacks` hands it to a real `LocalExecutor`,
whose worker runs it in Airflow's callback supervisor. The `continuum_health` DAG then
sends `resolved` once the run has ended, and not while it hangs. Not covered: the scheduler loop
itself (its query for expired deadlines is repeated here, restricted to this run) and
the wait for the clock (the deadline is moved into the past instead).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

DOMAIN = "deadline_probe"
DAG_ID = f"{DOMAIN}_decide"
pytestmark = pytest.mark.slow


@pytest.fixture
def probe_domain(spec_copy):
    """A copy of insurance_fraud (no deadline_minutes): its deadline is sized from recent runs."""
    return spec_copy("insurance_fraud", DOMAIN)[1]


def _sync_dags_to_db(session) -> None:
    """What the DAG processor does (and `dag.test()` too): parse the bundle, write the serialized DAGs."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db(session=session)
    session.commit()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)


def _run(dag, session, state, at: datetime):
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    return dag.create_dagrun(
        run_id=f"manual__{DOMAIN}_{at.timestamp()}",
        run_type=DagRunType.MANUAL,
        state=state,
        logical_date=None,
        data_interval=None,
        run_after=at,
        triggered_by=DagRunTriggeredByType.TEST,
        triggering_user_name="test",
        session=session,
    )


def _history(dag, session, now: datetime) -> None:
    """Three decisions of 10, 20 and 30 minutes, and one run that found nothing waiting (5 s, skipped)."""
    from airflow.utils.state import DagRunState, TaskInstanceState

    past = [(10 * 60, TaskInstanceState.SUCCESS), (20 * 60, TaskInstanceState.SUCCESS), (30 * 60, TaskInstanceState.SUCCESS), (5, TaskInstanceState.SKIPPED)]
    for i, (seconds, score_state) in enumerate(past):
        start = now - timedelta(days=1, hours=i)
        run = _run(dag, session, DagRunState.RUNNING, start)
        run.get_task_instance("score", session=session).state = score_state
        run.state = DagRunState.SUCCESS
        run.start_date, run.end_date = start, start + timedelta(seconds=seconds)
    session.commit()


def test_a_decide_run_past_its_deadline_pages_the_owner_with_the_run_and_its_link(
    airflow_db, mlflow_store, oncall, probe_domain
):
    from airflow import settings
    from airflow.executors.local_executor import LocalExecutor
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.callback import Callback
    from airflow.models.dag import DagModel
    from airflow.models.deadline import Deadline
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.state import DagRunState
    from sqlalchemy import select, update

    from continuum import alert_delivery

    session = settings.Session()
    _sync_dags_to_db(session)
    dag = SerializedDagModel.get_dag(DAG_ID, session=session)  # the scheduler's view of the DAG
    session.execute(update(DagModel).where(DagModel.dag_id == DAG_ID).values(is_paused=True))
    now = datetime.now(UTC)
    _history(dag, session, now)

    hanging = _run(dag, session, DagRunState.QUEUED, now)
    session.commit()
    [deadline] = session.scalars(select(Deadline).where(Deadline.dagrun_id == hanging.id)).all()
    # 3 x the mean of the three decisions (20 min); the skipped run does not count.
    assert deadline.deadline_time - hanging.queued_at == timedelta(minutes=60)

    # The run hung past its deadline: the clock moved 61 minutes on (its times moved back as much).
    hanging.queued_at -= timedelta(minutes=61)
    deadline.deadline_time -= timedelta(minutes=61)
    session.commit()
    executor = LocalExecutor(parallelism=1)
    runner = SchedulerJobRunner(job=Job(), executors=[executor])
    executor.start()
    try:
        expired = select(Deadline).where(Deadline.dagrun_id == hanging.id, Deadline.deadline_time < datetime.now(UTC), ~Deadline.missed)
        for missed in session.scalars(expired):
            missed.handle_miss(session)
        runner._enqueue_executor_callbacks(session)
        session.commit()
        executor.heartbeat()
    finally:
        executor.end()  # waits for the worker to finish the callback
    runner._process_executor_events(executor=executor, session=session)  # the callback's outcome, recorded
    session.commit()
    assert str(session.scalar(select(Callback.state).where(Callback.id == deadline.callback_id))) == "success"

    [hook] = oncall.http.on("/hook")
    alert = hook["body"]["alert"]
    assert (alert["kind"], alert["domain"], alert["owner"]) == ("deadline_missed", DOMAIN, probe_domain["owner"])
    assert (alert["dag_id"], alert["run_id"], alert["task_id"]) == (DAG_ID, hanging.run_id, None)
    assert alert["log_url"].endswith(f"/dags/{DAG_ID}/runs/{quote(hanging.run_id)}")
    assert alert["facts"]["allowed_minutes"] == 60.0 and alert["facts"]["deadline_sized_by"] == "recent_runs"
    assert alert["summary"] == "decision run not finished 60 minutes after it was queued"
    [slack] = oncall.http.on("/slack/oncall")
    assert slack["body"]["text"].startswith(f"[ERROR] deadline_missed {DOMAIN}: decision run not finished")
    assert f"log={alert['log_url']}" in slack["body"]["text"] and f"run_id={hanging.run_id}" in slack["body"]["text"]
    assert len(oncall.mail.messages) == 1
    assert [a["kind"] for a in alert_delivery.recorded(DOMAIN)] == ["deadline_missed"]

    # The health DAG clears it once the late run has ended, not while it still hangs.
    assert _health_resolutions(oncall) == []
    run_id = hanging.run_id
    session.close()  # dag.test() shares the thread's scoped session: end the run in a session of its own
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as ending:
        ending.execute(update(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id)
                       .values(state=DagRunState.SUCCESS, end_date=datetime.now(UTC)))
    [resolved] = _health_resolutions(oncall)
    assert resolved["facts"]["resolves"] == "deadline_missed" and resolved["dag_id"] == "continuum_health"
    assert resolved["facts"]["count"] == 1
    assert _health_resolutions(oncall) == [], "resolved is sent once"
    assert [a["kind"] for a in alert_delivery.recorded(DOMAIN)] == ["deadline_missed", "resolved"]


def _health_resolutions(oncall) -> list[dict]:
    """Run the real continuum_health DAG once; the `resolved` alerts it sent for the probe domain."""
    from airflow.dag_processing.dagbag import DagBag

    from continuum import settings

    before = len(oncall.http.on("/hook"))
    health = DagBag(dag_folder=str(settings.dags_dir() / "continuum_health.py")).dags["continuum_health"]
    assert str(health.test().state) == "success"
    sent = [h["body"]["alert"] for h in oncall.http.on("/hook")[before:]]
    return [a for a in sent if a["domain"] == DOMAIN and a["kind"] == "resolved"]
