"""Airflow adapter for Continuum alerts: the callbacks, the provider channels, deadlines.

Airflow puts plugins/ on sys.path, so a DAG file writes

    from continuum_notifier import default_args, deadline_alert
    default_args = default_args(spec.owner)        # every task: retries and the task_failed alert
    @dag(..., deadline=deadline_alert(90, domain=spec.name, owner=spec.owner))

Importing this module also registers the routed channels with `continuum.alert_delivery`:
Slack through the Slack provider's `SlackWebhookNotifier` (a `slackwebhook`
connection per route) and email through the SMTP provider's `SmtpNotifier` (an
`smtp` connection), and reads the routing from the Airflow Variable
`continuum_alert_routes`. Everything else (the alert model, routing decisions, noise
control, S3 audit trail, webhook) lives in `continuum`, which has no Airflow import.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.notifier import BaseNotifier

from continuum import alert_delivery
from continuum.alerts import (
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
        context: Context | None = None,
    ):
        super().__init__(context=context)
        self.kind = kind
        self.severity = severity
        self.title = title
        self.domain = domain
        self.owner = owner
        self.facts = facts

    def notify(self, context: Context) -> None:
        alert = alert_from_context(
            context,
            severity=self.severity,
            title=self.title,
            kind=self.kind,
            domain=self.domain,
            owner=self.owner,
            facts={**(self.facts or {}), **_deadline_facts(context)},
        )
        deliver(alert, occurrence=_occurrence(alert))


def _occurrence(alert: Alert) -> str:
    """One failure (or one missed deadline) of one try is one occurrence: a re-sent callback repeats nothing."""
    return f"{alert.kind}:{alert.dag_id}:{alert.run_id}:{alert.task_id}:{alert.try_number}"


def _deadline_facts(context: Any) -> dict[str, Any]:
    deadline = context.get("deadline") if hasattr(context, "get") else None
    return {"deadline_time": str(deadline.get("deadline_time"))} if isinstance(deadline, dict) else {}


def failure_notifier(severity: Severity | None = None, title: str | None = None) -> ContinuumNotifier:
    """The callback for `on_failure_callback` (task or DAG level): a `task_failed` alert."""
    return ContinuumNotifier(kind="task_failed", severity=severity, title=title)


def deadline_alert(
    minutes: float, domain: str | None = None, owner: str | None = None, what: str = "run"
) -> DeadlineAlert:
    """A `DeadlineAlert` that sends `deadline_missed` when a run is not done `minutes` after it was queued.

    The callback runs on an executor (`SyncCallback`): delivery writes to S3 with boto3,
    which is synchronous, so the triggerer's async loop is the wrong place for it.
    Caveat (Airflow 3.3.2): `dag.test()` of a DAG with a deadline fails when the run
    succeeds (`DeadlineAlertModel.get_by_id` receives the unserialized alert); the
    scheduler path is unaffected.
    """
    from airflow.sdk.definitions.callback import SyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=SyncCallback(
            ContinuumNotifier,
            kwargs={
                "kind": "deadline_missed",
                "title": f"{what} not finished {minutes:g} minutes after it was queued",
                "domain": domain,
                "owner": owner,
                "facts": {"deadline_minutes": minutes},
            },
        ),
    )


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
