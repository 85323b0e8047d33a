"""`blessing.approval: required`: a blessed challenger waits in the real decide DAG's `approve` task
(Airflow's ApprovalOperator, parked in AWAITING_INPUT) until a person answers.

A retail probe whose rules baseline is the first champion and whose floor no model reaches, so
every batch trains a challenger that is blessed (min_value 0.5, max_degradation 1). Three batches:
1. approved with `continuum approve` -> promoted, the approver and time in the record;
2. rejected with a comment -> `not_approved`, the champion stays, the batch is still scored;
3. nobody answers -> Airflow's own timeout sweep applies the default (Reject) -> `timed_out`.
The request the approver reads carries the comparison with the champion and the model card.
"""

from __future__ import annotations

import threading
import time

import pytest

DOMAIN = "approval_probe"
DAG_ID = f"{DOMAIN}_decide"
pytestmark = pytest.mark.slow


@pytest.fixture
def probe(spec_copy):
    from continuum import dagrun

    spec_copy(
        "retail_recommender",
        DOMAIN,
        owner="pricing-risk",
        monitoring={"floor": 0.99},
        # a tiny timeout: nothing sweeps it until the test runs the scheduler's sweep (batch 3)
        blessing={"approval": "required", "approval_timeout_hours": 0.0001, "min_value": 0.5, "max_degradation": 1.0,
                  "segment_column": None, "max_score_shift": None, "fairness": []},
    )
    dagrun.reset()
    yield
    dagrun.reset()


def _waiting_request(run_id: str):
    """The HITL request of the run's `approve` task once it is parked, else None."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=run_id, task_id="approve").one_or_none()
        if ti is None or ti.state != TaskInstanceState.AWAITING_INPUT:
            return None
        detail = session.query(HITLDetail).filter_by(ti_id=ti.id).one()
        return {"subject": detail.subject, "body": detail.body, "options": list(detail.options),
                "defaults": list(detail.defaults or [])}


class Approver(threading.Thread):
    """Waits (beside the in-process DAG run) until `batch_id`'s approval is asked, reads it, then answers.

    It keeps answering until the task has left AWAITING_INPUT: the timeout sweep resolves only
    requests past their timeout, so a sweep that comes too early must come again. Every look and
    answer is retried on any error (SQLite is busy while the DAG run writes), because a thread that
    stops early leaves the run parked forever. If no answer gets through before the deadline, the
    thread ends the wait with the sweep, so the run resumes and the test fails on `error`.
    """

    def __init__(self, batch_id: str, answer, minutes: float = 10):
        super().__init__(daemon=True)
        self.batch_id, self.answer, self.minutes = batch_id, answer, minutes
        self.request, self.answered, self.error = None, False, None

    def run(self) -> None:
        from continuum import lease

        deadline, last = time.monotonic() + self.minutes * 60, "nothing"
        while time.monotonic() < deadline:
            try:
                held = lease.current(DOMAIN)
                request = _waiting_request(held.holder) if held and held.batch_id == self.batch_id else None
                if request is None and self.answered:
                    return  # the run has resumed
                if request is not None:
                    self.request = self.request or request
                    self.answer(self.batch_id)
                    self.answered = True
            except Exception as exc:  # noqa: BLE001 - look again; the last error is reported if none gets through
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(1)
        self.error = f"the approve task was not answered in {self.minutes} minutes (last error: {last})"
        _sweep_timeouts(self.batch_id)  # resumes a parked run with its default, so ingest returns


def _ingest_answered(loop, seed: int, answer) -> tuple[dict, dict]:
    from continuum import storage

    path = loop.write(loop.batch("retail_recommender", n=3000, seed=seed))
    approver = Approver(storage.batch_id_for(path.read_bytes()), answer)
    approver.start()
    record = loop.ingest(DOMAIN, path=path)
    approver.join(timeout=60)
    assert approver.error is None, approver.error
    assert not approver.is_alive(), "the run ended before its approval was answered"
    return record, approver.request


def _sweep_timeouts(batch_id: str) -> None:
    """What the scheduler does every loop: resolve HITL tasks past their response timeout."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()


def test_a_person_approves_rejects_or_lets_the_request_time_out(loop, probe):
    from continuum import cli, registry

    def approve(batch_id: str) -> None:
        cli.approve(DOMAIN, batch_id, by="risk-officer")

    first, request = _ingest_answered(loop, 61, approve)
    version = first["challenger"]["version"]
    assert first["challenger"]["blessed"] is True
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert request["subject"] == f"{DOMAIN}: promote challenger v{version}?"
    assert "| roc_auc |" in request["body"] and f"# Model card: {DOMAIN} v{version}" in request["body"]
    assert first["approval"]["outcome"] == "approved" and first["approval"]["by"] == "risk-officer"
    assert first["approval"]["version"] == version and first["approval"]["at"]
    assert first["promoted"] is True and registry.champion(DOMAIN).version == version

    def reject(batch_id: str) -> None:
        cli.approve(DOMAIN, batch_id, reject=True, comment="fairness review pending", by="risk-officer")

    second, _ = _ingest_answered(loop, 62, reject)
    assert second["challenger"]["blessed"] is True
    assert second["approval"]["outcome"] == "rejected" and second["approval"]["comment"] == "fairness review pending"
    assert second["promotion"]["outcome"] == "not_approved" and second["promoted"] is False
    assert second["promotion"]["reasons"] == ["rejected by risk-officer: fairness review pending"]
    assert registry.champion(DOMAIN).version == version and second["scores"], "the champion stays and scores"

    third, _ = _ingest_answered(loop, 63, _sweep_timeouts)
    assert third["approval"]["outcome"] == "timed_out" and third["approval"]["by"] is None
    assert third["promotion"]["outcome"] == "not_approved" and "no approval within" in third["promotion"]["reasons"][0]
    assert registry.champion(DOMAIN).version == version


def test_approve_names_what_is_wrong_when_nothing_waits(spec_copy, s3):
    from continuum import cli

    spec_copy("retail_recommender", DOMAIN, blessing={"approval": "required"})
    with pytest.raises(cli.UserError, match="no approval is waiting for approval_probe batch b1"):
        cli.approve(DOMAIN, "b1")
    spec_copy("retail_recommender", "unattended_probe")
    with pytest.raises(cli.UserError, match="does not require approval"):
        cli.approve("unattended_probe", "b1")
