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


def default_args(owner: str) -> dict:
    """What every Continuum task gets: its owner, two retries with backoff, and the failure alert."""
    from datetime import timedelta

    return {
        "owner": owner,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "on_failure_callback": failure_notifier(),
    }
