"""Alerts: one message type, one formatter, and the channels it goes to.

An alert is built from whatever Airflow hands a failure callback (the task context
dict), formatted once, and delivered to every channel that is configured: a log line
always, a JSON object in S3 always (the audit trail the on-call engineer can list),
and a Slack-compatible webhook when `CONTINUUM_ALERT_WEBHOOK` is set. Delivery never
raises: an alert that crashes its callback hides the failure it was reporting.
No Airflow import here; `plugins/continuum_notifier.py` is the thin adapter.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

log = logging.getLogger(__name__)

WEBHOOK_ENV = "CONTINUUM_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_SECONDS = 5.0
RUNBOOK = "docs/runbook.md"
UNKNOWN = "unknown"

Severity = Literal["critical", "error", "warning", "info"]

# Task id fragment -> what the on-call engineer does first. Checked in order.
_RUNBOOK_HINTS: tuple[tuple[str, str], ...] = (
    ("validat", "batch broke its data contract: read batches/<domain>/<batch>/validation.json"),
    ("quarantin", "batch was quarantined: read its report under quarantine/<domain>/<batch>/"),
    ("drift", "drift check failed: read the drift report in batches/<domain>/<batch>/decision.json"),
    ("monitor", "monitoring failed: read batches/<domain>/<batch>/decision.json"),
    ("train", "training failed: open this batch's MLflow run; the champion is unchanged"),
    ("bless", "blessing failed: compare challenger and champion in MLflow; the champion is unchanged"),
    ("promot", "promotion failed: check the champion and previous aliases in MLflow; roll back if mixed"),
    ("scor", "scoring failed: check that the champion alias loads in MLflow, then clear the task"),
)

_DOMAIN_NAME = re.compile(r"[a-z0-9_]+")  # specs.NAME_PATTERN, without importing pydantic here
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_MAX_EXCEPTION_CHARS = 300


@dataclass(frozen=True)
class Alert:
    """Everything an on-call engineer needs to start, and nothing personal."""

    title: str
    severity: Severity
    domain: str
    dag_id: str
    task_id: str
    run_id: str
    batch_id: str | None = None
    owner: str = UNKNOWN
    try_number: int | None = None
    log_url: str | None = None
    exception: str | None = None
    runbook: str = RUNBOOK
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def alert_key(alert: Alert) -> str:
    """Where the alert's JSON lives in S3: listable per domain, sorted by time."""
    from continuum.storage import Keys

    stamp = alert.timestamp.replace("-", "").replace(":", "")
    return Keys(alert.domain).alert(f"{stamp}-{alert.dag_id}-{alert.task_id}")


def quarantine_alert(spec: Any, batch_id: str, outcome: Mapping[str, Any], run_id: str = UNKNOWN) -> Alert:
    """The owner's warning for a batch the validation gate refused (not a task failure)."""
    failed = ", ".join(outcome.get("failed", [])[:5]) or outcome.get("reason") or "see the report"
    return Alert(
        title=f"batch {batch_id} quarantined: {failed}",
        severity="warning",
        domain=spec.name,
        dag_id=f"{spec.name}_validate",
        task_id="gate",
        run_id=run_id,
        batch_id=batch_id,
        owner=spec.owner,
        runbook=runbook_hint("quarantine", spec.name, batch_id),
    )


def alert_from_context(
    context: Mapping[str, Any], severity: Severity = "error", title: str | None = None
) -> Alert:
    """An Alert from an Airflow task context; every key is optional (callbacks get partial ones)."""
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    task = context.get("task") or _attr(ti, "task")
    params = _as_mapping(context.get("params"))
    conf = _as_mapping(_attr(dag_run, "conf"))

    dag_id = str(_attr(dag, "dag_id") or _attr(ti, "dag_id") or _attr(dag_run, "dag_id") or UNKNOWN)
    task_id = str(_attr(ti, "task_id") or _attr(task, "task_id") or UNKNOWN)
    run_id = str(context.get("run_id") or _attr(dag_run, "run_id") or _attr(ti, "run_id") or UNKNOWN)
    exception = _one_line(context.get("exception"))
    domain = _domain(dag_id, params, conf, _attr(dag, "tags"))
    batch_id = _batch_id(params) or _batch_id(conf)
    return Alert(
        title=title or f"{dag_id}.{task_id} failed",
        severity=severity,
        domain=domain,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        batch_id=batch_id,
        owner=_scrub(str(_attr(task, "owner") or _attr(dag, "owner") or UNKNOWN)),
        try_number=_attr(ti, "try_number"),
        log_url=_attr(ti, "log_url"),
        exception=exception,
        runbook=runbook_hint(task_id, domain, batch_id),
    )


def runbook_hint(task_id: str, domain: str = UNKNOWN, batch_id: str | None = None) -> str:
    """A one-line first step for this kind of task, with the domain and batch filled in when known."""
    lowered = task_id.lower()
    for fragment, hint in _RUNBOOK_HINTS:
        if fragment in lowered:
            if domain != UNKNOWN:
                hint = hint.replace("<domain>", domain)
            if batch_id and "," not in batch_id:
                hint = hint.replace("<batch>", batch_id)
            return f"{hint} (see {RUNBOOK})"
    return f"read the task log, then {RUNBOOK}"


def format_text(alert: Alert) -> str:
    """One headline line, then one key=value line per detail that is known."""
    headline = f"[{alert.severity.upper()}] {alert.domain}: {alert.title}"
    details = {
        "dag_id": alert.dag_id,
        "task_id": alert.task_id,
        "run_id": alert.run_id,
        "batch_id": alert.batch_id,
        "try": alert.try_number,
        "owner": alert.owner,
        "error": alert.exception,
        "log": alert.log_url,
        "runbook": alert.runbook,
        "at": alert.timestamp,
    }
    return "\n".join([headline] + [f"{key}={value}" for key, value in details.items() if value is not None])


def deliver(alert: Alert) -> list[str]:
    """Send the alert everywhere configured; returns the channels that took it. Never raises."""
    delivered = ["log"]
    log.error("alert %s", _key_values(alert.to_dict()))

    key = alert_key(alert)
    try:
        from continuum import storage

        storage.put_json(key, alert.to_dict())
        delivered.append("s3")
    except Exception as exc:  # an alert must not raise; the log line above already holds it
        log.warning("alert_s3_failed key=%s error=%s", key, _one_line(exc))

    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if url and post_webhook(url, format_text(alert)):
        delivered.append("webhook")
    return delivered


def post_webhook(url: str, text: str, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> bool:
    """POST `{"text": ...}` (Slack incoming-webhook format); False and a log line on any failure."""
    if not url.startswith(("https://", "http://")):
        log.warning("alert_webhook_failed error=%s must be an http(s) URL", WEBHOOK_ENV)
        return False
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked above
            response.read()
    except Exception as exc:  # network, HTTP status and timeout errors alike: log, never raise
        log.warning("alert_webhook_failed error=%s", _one_line(exc))
        return False
    return True


def _attr(obj: Any, name: str) -> Any:
    """getattr that also survives properties which raise outside a running task."""
    if obj is None:
        return None
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _domain(dag_id: str, params: Mapping, conf: Mapping, tags: Any) -> str:
    """params/conf `domain`, else a `domain:<name>` tag, else the tag the DAG id starts with.

    Only a valid domain name is taken: it becomes part of an S3 key.
    """
    tags = sorted(str(tag) for tag in (tags or ()))
    candidates = [params.get("domain"), conf.get("domain")]
    candidates += [tag.removeprefix("domain:") for tag in tags if tag.startswith("domain:")]
    candidates += sorted((tag for tag in tags if dag_id.startswith(f"{tag}_")), key=len, reverse=True)
    return next((str(c) for c in candidates if c and _DOMAIN_NAME.fullmatch(str(c))), UNKNOWN)


def _batch_id(source: Mapping) -> str | None:
    value = source.get("batch_id") or source.get("batch_ids")
    if not value:
        return None
    if isinstance(value, list | tuple | set):
        return ",".join(str(v) for v in value)
    return str(value)


def _one_line(exc: Any) -> str | None:
    """`Type: first line of the message`, emails masked, cut short: fit for a chat message."""
    if exc is None:
        return None
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {message}" if isinstance(exc, BaseException) else message
    text = _scrub(text)
    return text if len(text) <= _MAX_EXCEPTION_CHARS else text[: _MAX_EXCEPTION_CHARS - 3] + "..."


def _scrub(text: str) -> str:
    return _EMAIL.sub("<email>", text)


def _key_values(fields: Mapping[str, Any]) -> str:
    """key=value pairs, values quoted when they hold spaces, so one event stays one line."""
    pairs = []
    for key, value in fields.items():
        if value is None:
            continue
        value = str(value).replace("\n", " ")
        pairs.append(f"{key}={json.dumps(value) if (' ' in value or not value) else value}")
    return " ".join(pairs)
