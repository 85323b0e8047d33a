"""Airflow adapter for Continuum alerts: the callbacks, the provider channels, deadlines.

Airflow puts plugins/ on sys.path, so a DAG file writes

    from continuum_notifier import default_args, deadline_alert
    default_args = default_args(spec.owner)        # every task: retries and the task_failed alert
    @dag(..., deadline=deadline_alert(spec.deadline_minutes, domain=spec.name, owner=spec.owner))

Importing this module also registers the routed channels with `continuum.alert_delivery`:
Slack through the Slack provider's `SlackWebhookNotifier` (a `slackwebhook`
connection per route) and email through the SMTP provider's `SmtpNotifier` (an
`smtp` connection), and reads the routing from the Airflow Variable
`continuum_alert_routes`. As a plugin (`ContinuumDeadlinesPlugin`) it registers the
deadline reference that sizes a run's deadline from recent runtimes. Everything else (the alert model, routing decisions, noise
control, S3 audit trail, webhook) lives in `continuum`, which has no Airflow import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.definitions.deadline import BaseDeadlineReference

from continuum import alert_delivery
from continuum.alerts import (
    UNKNOWN,
    Alert,
    Severity,
    alert_from_context,
    deliver,
    format_html,
    format_subject,
    format_text,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.definitions.deadline import DeadlineAlert

DEFAULT_SMTP_CONN_ID = "smtp_default"
log = logging.getLogger("continuum.alerts")


class ContinuumNotifier(BaseNotifier):
    """Sends one Continuum alert per call; `title` may be a Jinja template over the context.

    Also the callback of a `DeadlineAlert`: Airflow instantiates it with the
    callback's kwargs (plus `context`), then calls it with the context.
    """

    template_fields = ("title",)

    def __init__(
        self,
        kind: str = "task_failed",
        severity: Severity | None = None,
        title: str | None = None,
        domain: str | None = None,
        owner: str | None = None,
        facts: dict[str, Any] | None = None,
        what: str = "run",
        context: Context | None = None,
    ):
        super().__init__(context=context)
        self.kind = kind
        self.severity = severity
        self.title = title
        self.domain = domain
        self.owner = owner
        self.facts = facts
        self.what = what

    def notify(self, context: Context) -> None:
        deadline = _deadline_facts(context)
        title = self.title
        if self.kind == "deadline_missed" and title is None:
            title = _deadline_title(self.what, deadline.get("allowed_minutes"))
        alert = alert_from_context(
            context,
            severity=self.severity,
            title=title,
            kind=self.kind,
            domain=self.domain,
            owner=self.owner,
            facts={**(self.facts or {}), **deadline},
        )
        if self.kind == "deadline_missed":
            # A deadline belongs to the run, not to a task: the link opens the run (its tasks and their logs).
            alert = alert.with_(task_id=None, log_url=alert.log_url or run_url(alert.dag_id, alert.run_id))
        deliver(alert, occurrence=_occurrence(alert))


def _occurrence(alert: Alert) -> str:
    """One failure (or one missed deadline) of one try is one occurrence: a re-sent callback repeats nothing."""
    return f"{alert.kind}:{alert.dag_id}:{alert.run_id}:{alert.task_id}:{alert.try_number}"


def run_url(dag_id: str | None, run_id: str | None) -> str | None:
    """The Airflow UI page of a DAG run (`[api] base_url`, as a task's `log_url` is built)."""
    from urllib.parse import quote

    from airflow.sdk.configuration import conf

    if not dag_id or not run_id or UNKNOWN in (dag_id, run_id):
        return None
    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/")
    return f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id)}"


def _deadline_facts(context: Any) -> dict[str, Any]:
    """When the run was queued, its deadline, and the minutes it was given (a deadline callback's context)."""
    deadline = context.get("deadline") if hasattr(context, "get") else None
    if not isinstance(deadline, dict):
        return {}
    facts: dict[str, Any] = {"deadline_time": str(deadline.get("deadline_time"))}
    dag_run = context.get("dag_run")
    queued_at = dag_run.get("queued_at") if isinstance(dag_run, dict) else None
    if queued_at and deadline.get("deadline_time"):
        facts["queued_at"] = str(queued_at)
        allowed = _as_time(deadline["deadline_time"]) - _as_time(queued_at)
        facts["allowed_minutes"] = round(allowed.total_seconds() / 60, 1)
    return facts


def _as_time(value: Any):
    from datetime import datetime

    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _deadline_title(what: str, minutes: float | None) -> str:
    if minutes is None:
        return f"{what} not finished by its deadline"
    return f"{what} not finished {minutes:g} minutes after it was queued"


def failure_notifier(severity: Severity | None = None, title: str | None = None) -> ContinuumNotifier:
    """The callback for `on_failure_callback` (task or DAG level): a `task_failed` alert."""
    return ContinuumNotifier(kind="task_failed", severity=severity, title=title)


@dataclass
class RecentRuntimeDeadline(BaseDeadlineReference):
    """A run's queued time plus `continuum.deadlines.size` of the DAG's recent successful runs.

    Evaluated by the scheduler when it creates a run (a custom deadline reference,
    registered by `ContinuumDeadlinesPlugin` below). A run counts when `done_task`
    succeeded in it: a `<domain>_decide` run with nothing waiting skips its work and
    says nothing about how long a decision takes.
    """

    done_task: str = ""
    required_kwargs = {"dag_id", "run_id"}

    def serialize_reference(self) -> dict[str, Any]:
        return {**super().serialize_reference(), "done_task": self.done_task}

    @classmethod
    def deserialize_reference(cls, reference_data: dict[str, Any]) -> RecentRuntimeDeadline:
        return cls(done_task=reference_data.get("done_task", ""))

    def _evaluate_with(self, *, session, dag_id: str, run_id: str, **kwargs: Any):
        from datetime import UTC, datetime

        from airflow.models import DagRun, TaskInstance
        from sqlalchemy import select

        from continuum import deadlines

        query = (
            select(DagRun.start_date, DagRun.end_date)
            .where(DagRun.dag_id == dag_id, DagRun.state == "success")
            .where(DagRun.start_date.is_not(None), DagRun.end_date.is_not(None))
            .order_by(DagRun.end_date.desc())
            .limit(deadlines.RECENT_RUNS)
        )
        if self.done_task:
            done = select(TaskInstance.run_id).where(
                TaskInstance.dag_id == dag_id, TaskInstance.task_id == self.done_task, TaskInstance.state == "success"
            )
            query = query.where(DagRun.run_id.in_(done))
        recent = [(end - start).total_seconds() for start, end in session.execute(query).all()]
        sizing = deadlines.size(None, recent)
        queued_at = session.scalar(select(DagRun.queued_at).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        log.info(
            "event=deadline_sized dag_id=%s run_id=%s minutes=%s basis=%s runs=%d",
            dag_id, run_id, sizing.minutes, sizing.basis, len(recent),
        )
        return (queued_at or datetime.now(UTC)) + timedelta(minutes=sizing.minutes)


def deadline_alert(
    minutes: float | None,
    domain: str | None = None,
    owner: str | None = None,
    what: str = "run",
    done_task: str = "",
) -> DeadlineAlert:
    """A `DeadlineAlert` that sends `deadline_missed` when a run is not done in time after it was queued.

    `minutes` (the spec's `deadline_minutes`) sets the time; None sizes it per run from
    the DAG's recent successful runs in which `done_task` succeeded (`RecentRuntimeDeadline`).
    The callback runs on an executor (`SyncCallback`): delivery writes to S3 with boto3,
    which is synchronous, so the triggerer's async loop is the wrong place for it.

    `dag.test()` cannot run a DAG with a deadline in Airflow 3.3.2: it round-trips the DAG
    through `DagSerialization` in memory, which leaves `dag.deadline` a list of encoded
    alert dicts (the UUIDs are only put in when the DAG is written to the metadata
    database, `SerializedDagModel._generate_deadline_uuids`), and when the run succeeds
    `DagRun.update_state` passes each dict to `DeadlineAlertModel.get_by_id`, which fails
    (`StatementError: 'dict' object has no attribute 'hex'`). `continuum.dagrun.run`
    therefore runs in-process DAGs without their deadline; the scheduler path is unaffected.
    """
    from airflow.sdk.definitions.callback import SyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    if minutes is None:
        reference, interval = RecentRuntimeDeadline(done_task=done_task), timedelta(0)
        facts: dict[str, Any] = {"deadline_sized_by": "recent_runs"}
    else:
        reference, interval = DeadlineReference.DAGRUN_QUEUED_AT, timedelta(minutes=minutes)
        facts = {"deadline_minutes": minutes, "deadline_sized_by": "spec"}
    return DeadlineAlert(
        reference=reference,
        interval=interval,
        callback=SyncCallback(
            ContinuumNotifier,
            kwargs={"kind": "deadline_missed", "what": what, "domain": domain, "owner": owner, "facts": facts},
        ),
    )


class ContinuumDeadlinesPlugin(AirflowPlugin):
    """Registers `RecentRuntimeDeadline`, so the scheduler can evaluate the DAGs' deadlines."""

    name = "continuum_deadlines"
    deadline_references = [RecentRuntimeDeadline]


def default_args(owner: str, **overrides) -> dict:
    """What every Continuum task gets: its owner, a time limit, retries with backoff, the failure alert.

    The time limit (`settings.task_timeout()`, `CONTINUUM_TASK_TIMEOUT_MINUTES`) stops a task that
    hangs on something the client timeouts do not cover; a task that needs longer says so with
    `@task(execution_timeout=...)`, and `overrides` replace any key for a whole DAG. A failure
    from an unreachable service is retried by Airflow (30 s, then 60 s, at most 10 min apart;
    `CONTINUUM_RETRY_DELAY_SECONDS` sets the first delay), not by stacking client retries inside one attempt.
    """
    from datetime import timedelta

    from continuum import settings

    return {
        "owner": owner,
        "retries": 2,
        "retry_delay": settings.retry_delay(),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=settings.MAX_RETRY_DELAY_MINUTES),
        "execution_timeout": settings.task_timeout(),
        "on_failure_callback": failure_notifier(),
    } | overrides


def send_slack(alert: Alert, route: alert_delivery.Route) -> None:
    """Post the alert text to the route's Slack incoming-webhook connection (Slack provider)."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    # notify(), not __call__: the alert text is final and must not go through Jinja.
    SlackWebhookNotifier(slack_webhook_conn_id=route.conn_id, text=format_text(alert)).notify({})


def send_email(alert: Alert, route: alert_delivery.Route) -> None:
    """Mail the alert to the route's addresses through its SMTP connection (SMTP provider).

    The sender address is the connection's `from_email` extra.
    """
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    SmtpNotifier(
        to=list(route.to),
        subject=format_subject(alert),
        html_content=format_html(alert),
        smtp_conn_id=route.conn_id or DEFAULT_SMTP_CONN_ID,
    ).notify({})


def _routes_from_variable() -> str | None:
    """The routing variable as Airflow resolves it: secrets backends, AIRFLOW_VAR_ env, metadata DB."""
    from airflow.sdk import Variable

    return Variable.get(alert_delivery.ROUTES_VARIABLE, default=None)


alert_delivery.register("slack", send_slack)
alert_delivery.register("email", send_email)
alert_delivery.set_routes_loader(_routes_from_variable)
