"""Airflow adapter for Continuum alerts: a notifier for `on_failure_callback` and friends.

Airflow puts plugins/ on sys.path, so a DAG file writes

    from continuum_notifier import failure_notifier
    default_args = {"on_failure_callback": failure_notifier(), ...}

All the logic (reading the context, formatting, S3 and webhook delivery) lives in
`continuum.alerts`, which has no Airflow import and is tested on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk.bases.notifier import BaseNotifier

from continuum.alerts import Severity, alert_from_context, deliver

if TYPE_CHECKING:
    from airflow.sdk import Context


class ContinuumNotifier(BaseNotifier):
    """Sends one Continuum alert per call; `title` may be a Jinja template over the context."""

    template_fields = ("title",)

    def __init__(self, severity: Severity = "error", title: str | None = None):
        super().__init__()
        self.severity = severity
        self.title = title

    def notify(self, context: Context) -> None:
        deliver(alert_from_context(context, severity=self.severity, title=self.title))


def failure_notifier(severity: Severity = "error", title: str | None = None) -> ContinuumNotifier:
    """The callback for `on_failure_callback` (task or DAG level)."""
    return ContinuumNotifier(severity=severity, title=title)


def default_args(owner: str, **overrides) -> dict:
    """What every Continuum task gets: its owner, a time limit, retries with backoff, the failure alert.

    The time limit (`settings.task_timeout()`, `CONTINUUM_TASK_TIMEOUT_MINUTES`) stops a task that
    hangs on something the client timeouts do not cover; a task that needs longer says so with
    `@task(execution_timeout=...)`, and `overrides` replace any key for a whole DAG. A failure
    from an unreachable service is retried by Airflow (30 s, then 60 s, at most 10 min apart),
    not by stacking client retries inside one attempt.
    """
    from datetime import timedelta

    from continuum import settings

    return {
        "owner": owner,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": settings.task_timeout(),
        "on_failure_callback": failure_notifier(),
    } | overrides
