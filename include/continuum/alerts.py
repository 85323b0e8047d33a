"""Alerts: one message type, one formatter, one place that decides who gets it.

An `Alert` has a stable `kind` (the runbook anchor `docs/runbook.md#<kind>`), a
severity, the domain or assistant and its owner, where it happened (DAG, task, run,
try, batch), a one-line summary and the facts behind it. It is built here (from an
Airflow task context, from a batch's decision record, or from a health check's
`Condition`) and handed to `deliver`, which applies noise control and sends it to
every channel the owner's route names (`continuum.alert_delivery`).

No Airflow import here; `plugins/continuum_notifier.py` is the thin adapter that
adds the provider channels (Slack, email) and the Airflow callbacks.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from continuum.decision import DecisionRecord
    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)

WEBHOOK_ENV = "CONTINUUM_ALERT_WEBHOOK"  # kept here: callers and docs know it by this module
RUNBOOK = "docs/runbook.md"
UNKNOWN = "unknown"

Severity = Literal["critical", "error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "error": 2, "critical": 3}

# Every kind an on-call engineer can receive, with its default severity. The names are
# stable: they are runbook anchors, S3 state keys and what `continuum alerts --kind` filters.
KINDS: dict[str, Severity] = {
    "task_failed": "error",
    "batch_quarantined": "warning",
    "champion_below_floor": "critical",
    "challenger_rejected_repeatedly": "warning",
    "model_stale": "warning",
    "data_missing": "error",
    "prompt_guardrail_breach": "critical",
    "deadline_missed": "error",
    "realised_gap": "warning",
    "estimated_drop": "warning",
    "resolved": "info",
}

# Task id fragment -> what the on-call engineer does first. Checked in order.
_RUNBOOK_HINTS: tuple[tuple[str, str], ...] = (
    ("validat", "batch broke its data contract: read batches/<domain>/<batch>/validation.json"),
    ("quarantin", "batch was quarantined: read its report under quarantine/<domain>/<batch>/"),
    ("drift", "drift check failed: read the drift report in batches/<domain>/<batch>/decision.json"),
    ("monitor", "monitoring failed: read batches/<domain>/<batch>/decision.json"),
    ("train", "training failed: open this batch's MLflow run; the champion is unchanged"),
    ("bless", "blessing failed: compare challenger and champion in MLflow; the champion is unchanged"),
    ("promot", "promotion failed: check the champion and previous aliases in MLflow; roll back if mixed"),
    ("scor", "scoring failed: 'scores not written' names the bad score column (runbook: Score check failed); "
     "else check that the champion alias loads in MLflow, then clear the task"),
)

_NAME = re.compile(r"[a-z0-9_]+")  # specs.NAME_PATTERN, without importing pydantic here
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_MAX_EXCEPTION_CHARS = 300


def _utc_stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Alert:
    """Everything an on-call engineer needs to start, and nothing personal.

    `domain` is the domain or the assistant. `count` is how many occurrences this
    alert stands for since `first_seen` (noise control collapses repeats into it).
    """

    kind: str
    domain: str
    summary: str
    severity: Severity | None = None
    owner: str = UNKNOWN
    facts: dict[str, Any] = field(default_factory=dict)
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    try_number: int | None = None
    batch_id: str | None = None
    log_url: str | None = None
    exception: str | None = None
    hint: str | None = None
    runbook: str = ""
    count: int = 1
    first_seen: str | None = None
    timestamp: str = field(default_factory=_utc_stamp)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind '{self.kind}'; use one of {', '.join(KINDS)}")
        if not _NAME.fullmatch(self.domain) and self.domain != UNKNOWN:
            raise ValueError(f"alert domain '{self.domain}' is not a domain or assistant name ([a-z0-9_]+)")
        if self.severity is None:
            object.__setattr__(self, "severity", KINDS[self.kind])
        if not self.runbook:
            object.__setattr__(self, "runbook", f"{RUNBOOK}#{self.kind}")
        if self.first_seen is None:
            object.__setattr__(self, "first_seen", self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Alert:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in payload.items() if k in known})

    def with_(self, **changes: Any) -> Alert:
        return replace(self, **changes)


@dataclass(frozen=True)
class Condition:
    """A state that either holds (`firing`) or not, for one domain or assistant.

    Health checks and `after_decision` return these; `alert_delivery.apply` turns a
    firing one into an alert and a cleared one that had alerted into `resolved`.
    """

    kind: str
    domain: str
    owner: str
    firing: bool
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)
    batch_id: str | None = None

    def alert(self, now: datetime | None = None, **where: Any) -> Alert:
        return Alert(
            kind=self.kind,
            domain=self.domain,
            owner=self.owner,
            summary=self.summary,
            facts=self.facts,
            batch_id=self.batch_id,
            timestamp=_utc_stamp(now),
            **where,
        )


def resolved_alert(previous: Mapping[str, Any], now: datetime | None = None, **where: Any) -> Alert:
    """The one `resolved` message for a condition that had alerted (`previous` is its noise state).

    `where` is the task that saw it clear (DAG, task, run, try, log link), as for any alert.
    """
    kind = previous["kind"]
    count = int(previous.get("count", 1))
    return Alert(
        kind="resolved",
        domain=previous["domain"],
        owner=previous.get("owner") or UNKNOWN,
        summary=f"{kind} is back to normal (alerted {count} time{'s' if count != 1 else ''} since {previous.get('first_seen')})",
        facts={"resolves": kind, "count": count, "since": previous.get("first_seen")},
        timestamp=_utc_stamp(now),
        **where,
    )


def alert_key(alert: Alert) -> str:
    """Where the alert's JSON lives in S3: listable per domain, sorted by time."""
    from continuum.storage import Keys

    stamp = alert.timestamp.replace("-", "").replace(":", "")
    resolves = alert.facts.get("resolves") if alert.kind == "resolved" else None
    suffix = f"-{resolves}" if resolves in KINDS else ""  # two conditions may clear in the same second
    suffix += f"-{alert.task_id}" if alert.task_id and _NAME.fullmatch(alert.task_id) else ""
    return Keys(alert.domain).alert(f"{stamp}-{alert.kind}{suffix}")


def alert_from_context(
    context: Mapping[str, Any],
    severity: Severity | None = None,
    title: str | None = None,
    kind: str = "task_failed",
    domain: str | None = None,
    owner: str | None = None,
    facts: Mapping[str, Any] | None = None,
) -> Alert:
    """An Alert from an Airflow callback context; every key is optional (callbacks get partial ones).

    Task callbacks pass objects; a deadline callback passes `dag_run` as a plain dict
    (the API's DAGRunResponse), so both are read. `domain`/`owner` override what the
    context says (a deadline context has no tags to find the domain in).
    """
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    task = context.get("task") or _attr(ti, "task")
    params = _as_mapping(context.get("params"))
    conf = _as_mapping(_attr(dag_run, "conf"))

    dag_id = str(_attr(dag, "dag_id") or _attr(ti, "dag_id") or _attr(dag_run, "dag_id") or UNKNOWN)
    task_id = str(_attr(ti, "task_id") or _attr(task, "task_id") or UNKNOWN)
    run_id = str(
        context.get("run_id") or _attr(dag_run, "run_id") or _attr(dag_run, "dag_run_id") or _attr(ti, "run_id") or UNKNOWN
    )
    domain = domain if domain and _NAME.fullmatch(domain) else _domain(dag_id, params, conf, _attr(dag, "tags"))
    batch_id = _batch_id(params) or _batch_id(conf)
    default_title = f"{dag_id}.{task_id} failed" if kind == "task_failed" else f"{dag_id}: {kind.replace('_', ' ')}"
    return Alert(
        kind=kind,
        summary=title or default_title,
        severity=severity,
        domain=domain,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        batch_id=batch_id,
        owner=_scrub(str(owner or _attr(task, "owner") or _attr(dag, "owner") or UNKNOWN)),
        facts=dict(facts or {}),
        try_number=_attr(ti, "try_number"),
        log_url=_attr(ti, "log_url"),
        exception=_one_line(context.get("exception")),
        hint=runbook_hint(task_id, domain, batch_id),
    )


def after_decision(
    spec: DomainSpec, record: DecisionRecord, now: datetime | None = None, **where: Any
) -> list[Condition]:
    """The conditions a batch's final decision record sets or clears, delivered; returns them.

    Call it once the record is final (after promotion, or after the gate for a
    quarantined batch). Each condition is keyed by the batch id, so a retried task
    that calls it again sends nothing twice. `where` (dag_id, task_id, run_id,
    try_number, log_url) says which task decided: `task_location(context)` in a DAG task.
    """
    from continuum import alert_delivery

    conditions = decision_conditions(spec, record)
    for condition in conditions:
        alert_delivery.apply(condition, now=now, occurrence=f"batch:{record.batch_id}", **where)
    return conditions


def task_location(context: Mapping[str, Any]) -> dict[str, Any]:
    """dag_id, task_id, run_id, try_number and log_url of the running task, from its Airflow context."""
    alert = alert_from_context(context)
    return {
        "dag_id": alert.dag_id,
        "task_id": alert.task_id,
        "run_id": alert.run_id,
        "try_number": alert.try_number,
        "log_url": alert.log_url,
    }


def decision_conditions(
    spec: DomainSpec, record: DecisionRecord, history: list[DecisionRecord] | None = None
) -> list[Condition]:
    """What a decision record says about the domain: quarantine, champion under floor, rejection streak.

    `history` is the domain's recent records, newest first (read from S3 when None);
    it is only needed to count challengers rejected in a row.
    """
    from continuum import monitoring

    base = {"domain": spec.name, "owner": spec.owner, "batch_id": record.batch_id}
    if record.quarantined:
        failed = record.validation.failed
        return [
            Condition(
                kind="batch_quarantined",
                firing=True,
                summary=f"batch {record.batch_id} quarantined: {', '.join(failed[:5]) or record.validation.reason}",
                facts={"failed_expectations": len(failed), "report": record.validation.report},
                **base,
            )
        ]
    conditions = [
        Condition(kind="batch_quarantined", firing=False, summary="a batch passed validation", **base)
    ]
    performance = record.performance
    if performance is not None and performance.value is not None:
        below = monitoring.below_floor(spec, performance.value) and not record.promoted
        conditions.append(
            Condition(
                kind="champion_below_floor",
                firing=below,
                summary=(
                    f"champion {performance.metric}={performance.value:.4g} is under the floor "
                    f"{performance.floor:.4g} and no blessed challenger replaced it"
                ),
                facts={
                    "metric": performance.metric,
                    "value": performance.value,
                    "floor": performance.floor,
                    "champion_version": record.champion.version if record.champion else None,
                    "challenger_version": record.challenger.version if record.challenger else None,
                    "promoted": record.promoted,
                },
                **base,
            )
        )
    if record.challenger is not None:
        threshold = spec.blessing.alert_after_rejections
        streak = rejection_streak(record, history if history is not None else _history(spec.name))
        conditions.append(
            Condition(
                kind="challenger_rejected_repeatedly",
                firing=not record.challenger.blessed and streak >= threshold,
                summary=f"{streak} challengers in a row were not blessed (alert after {threshold})",
                facts={
                    "rejected_in_a_row": streak,
                    "threshold": threshold,
                    "last_challenger": record.challenger.version,
                    "why_not": record.challenger.why_not[:3],
                },
                **base,
            )
        )
    return conditions


def rejection_streak(record: DecisionRecord, history: list[DecisionRecord]) -> int:
    """How many challengers in a row, ending with `record`'s, were not blessed."""
    records = [record, *(r for r in history if r.batch_id != record.batch_id)]
    streak = 0
    for item in records:
        if item.challenger is None:
            continue
        if item.challenger.blessed:
            break
        streak += 1
    return streak


def _history(domain: str) -> list[DecisionRecord]:
    from continuum import decision

    return decision.latest(domain, limit=50)


def runbook_hint(task_id: str, domain: str = UNKNOWN, batch_id: str | None = None) -> str:
    """A one-line first step for this kind of task, with the domain and batch filled in when known."""
    lowered = task_id.lower()
    for fragment, hint in _RUNBOOK_HINTS:
        if fragment in lowered:
            if domain != UNKNOWN:
                hint = hint.replace("<domain>", domain)
            if batch_id and "," not in batch_id:
                hint = hint.replace("<batch>", batch_id)
            return hint
    return "read the task log"


def format_text(alert: Alert) -> str:
    """One headline line, then one key=value line per detail that is known (chat and email body)."""
    repeated = f" (x{alert.count} since {alert.first_seen})" if alert.count > 1 else ""
    headline = f"[{(alert.severity or 'error').upper()}] {alert.kind} {alert.domain}: {alert.summary}{repeated}"
    details = {
        **{f"fact.{k}": _fact(v) for k, v in alert.facts.items()},
        "owner": alert.owner,
        "dag_id": alert.dag_id,
        "task_id": alert.task_id,
        "run_id": alert.run_id,
        "batch_id": alert.batch_id,
        "try": alert.try_number,
        "error": alert.exception,
        "log": alert.log_url,
        "first_step": alert.hint,
        "runbook": alert.runbook,
        "at": alert.timestamp,
    }
    return "\n".join([headline] + [f"{key}={value}" for key, value in details.items() if value is not None])


def format_subject(alert: Alert) -> str:
    """The email subject line."""
    return f"[continuum {alert.severity}] {alert.kind} {alert.domain}: {alert.summary}"[:200]


def format_html(alert: Alert) -> str:
    """The email body: the text lines, escaped, in a <pre> block (no template engine needed)."""
    import html

    return f"<pre>{html.escape(format_text(alert))}</pre>"


def log_line(alert: Alert) -> str:
    """The structured (key=value) log line of an alert."""
    fields = alert.to_dict()
    facts = fields.pop("facts")
    return _key_values({**fields, **{f"fact_{k}": _fact(v) for k, v in facts.items()}})


def deliver(alert: Alert, now: datetime | None = None, occurrence: str | None = None) -> list[str]:
    """Send the alert (with noise control) to every channel configured; returns those that took it.

    Never raises: an alert that crashes its callback hides the failure it was reporting.
    """
    from continuum import alert_delivery

    return alert_delivery.deliver(alert, now=now, occurrence=occurrence)


def _fact(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return value


def _attr(obj: Any, name: str) -> Any:
    """getattr that also survives properties which raise outside a running task."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
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
    return next((str(c) for c in candidates if c and _NAME.fullmatch(str(c))), UNKNOWN)


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
