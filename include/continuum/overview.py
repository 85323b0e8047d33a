"""What the Continuum page in the Airflow UI shows, read from S3 and MLflow.

Per domain: the champion and the previous version with their metrics and age, the last
decisions (with whether their drift and validation reports exist), the open alerts, and
the points of the metric-over-time chart. Per assistant: the production prompt and the
candidates with their latest scores. `build()` returns it all as one `Overview`;
`continuum.overview_page` renders it, and `plugins/continuum_view.py` serves it.

No Airflow and no FastAPI here. A source that cannot be read does not blank the page and
is never shown as "nothing there": the part it feeds is marked unread, the page says
which service failed and what to do (`outages`), and a log line records it. After the
first outage of a service, the rest of the build skips it, so a page with MLflow down
costs one round of client retries, not one per domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

T = TypeVar("T")
MLFLOW, S3 = "MLflow", "S3"
DECISIONS_SHOWN = 10
# The chart's series, in drawing order. `champion`: the champion's primary metric on a
# labelled batch (the monitor step's `performance.value`); `realised` and `estimated`:
# the metric once late labels arrive and the estimate before them, read from the
# decision record's `extra` under these names (a number, or a mapping with `value`).
SERIES = ("champion", "realised", "estimated")


class Role(BaseModel):
    """A registered model version in a role (champion or previous)."""

    version: str
    created_at: datetime
    age_seconds: float
    metrics: dict[str, float] = Field(default_factory=dict)


class Decision(BaseModel):
    """One batch's decision as the page lists it."""

    batch_id: str
    saved_at: datetime
    outcome: str
    detail: str = ""
    drift_share: float | None = None
    metric: float | None = None
    champion: str | None = None
    drift_report: bool = False
    validation_report: bool = False


class Point(BaseModel):
    """One x position of the chart: a batch, when its record was saved, and a value per series."""

    at: datetime
    batch_id: str
    values: dict[str, float]


class DomainView(BaseModel):
    name: str
    owner: str
    primary_metric: str
    floor: float
    champion: Role | None = None
    previous: Role | None = None
    roles_read: bool = False  # False: MLflow could not be read, so no role is known (not "none")
    decisions: list[Decision] = Field(default_factory=list)
    decisions_read: bool = False
    points: list[Point] = Field(default_factory=list)
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    alerts_read: bool = False
    unavailable: list[str] = Field(default_factory=list)


class AssistantView(BaseModel):
    name: str
    owner: str
    primary_score: str
    production: dict[str, Any] | None = None
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    roles_read: bool = False
    latest_decision: dict[str, Any] | None = None
    decision_read: bool = False
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    alerts_read: bool = False
    unavailable: list[str] = Field(default_factory=list)


class Overview(BaseModel):
    generated_at: datetime
    domains: list[DomainView] = Field(default_factory=list)
    assistants: list[AssistantView] = Field(default_factory=list)
    spec_errors: list[str] = Field(default_factory=list)


class _Reader:
    """Reads one source at a time; remembers a service found down for the rest of the build."""

    def __init__(self) -> None:
        self.down: dict[str, str] = {}

    def read(self, source: str, name: str, what: str, fetch: Callable[[], T], notes: list[str]) -> tuple[bool, T | None]:
        """(True, value) when read; (False, None) with a line in `notes` when not."""
        from continuum import outages

        if source in self.down:
            if self.down[source] not in notes:
                notes.append(self.down[source])
            return False, None
        try:
            return True, fetch()
        except Exception as exc:  # shown on the page and logged: the page degrades, it does not go blank
            message = outages.describe(exc)
            if message:
                self.down[source] = message
                log.warning("event=overview_unavailable source=%s name=%s what=%s error=%s", source, name, what, message)
            else:
                message = f"{what} of {name} could not be read from {source}: {_one_line(exc)}"
                log.exception("event=overview_read_failed source=%s name=%s what=%s", source, name, what)
            if message not in notes:
                notes.append(message)
            return False, None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def role(ref: Any, now: datetime) -> Role | None:
    """A registry.ModelRef as the page shows it; None without one."""
    if ref is None:
        return None
    return Role(
        version=ref.version,
        created_at=ref.created_at,
        age_seconds=max(0.0, (now - ref.created_at).total_seconds()),
        metrics=dict(ref.metrics),
    )


def outcome(record: Any) -> tuple[str, str]:
    """(outcome, one-line detail) of a decision record (`decision.DecisionRecord`)."""
    if record.quarantined:
        failed = ", ".join(record.validation.failed)
        return "quarantined", record.validation.reason or (f"failed: {failed}" if failed else "")
    if record.promotion is not None:
        reasons = list(record.promotion.reasons)
        if record.challenger is not None and not record.challenger.blessed:
            reasons += record.challenger.why_not
        return record.promotion.outcome, "; ".join(dict.fromkeys(reasons))  # each reason once
    if record.retrain.waiting_for_labels:
        return "waiting_for_labels", "retrain asked for on an unlabelled batch: " + ", ".join(record.retrain.reasons)
    if not record.finished:
        return "in_progress", "done: " + (", ".join(record.steps) or "nothing yet")
    if not record.retrain.triggered:
        return "kept", "no retrain needed"
    return "finished", ", ".join(record.retrain.reasons)


def _series_value(raw: Any) -> float | None:
    value = raw.get("value") if isinstance(raw, Mapping) else raw
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        return None
    return float(value)


def point(saved_at: datetime, record: Any, realised: float | None = None) -> Point | None:
    """The chart point of one decision record, or None when it carries no metric.

    `champion`: the champion's metric on a labelled batch (monitor); `estimated`: the CBPE
    estimate on an unlabelled one (`record.estimate`); `realised`: the metric once its late
    labels arrived (`labels.realised_values`).
    """
    values = {
        "champion": _series_value(record.performance.value if record.performance else None),
        "realised": _series_value(realised),
        "estimated": _series_value(record.estimate.value if record.estimate else None),
    }
    kept = {name: value for name, value in values.items() if value is not None}
    return Point(at=saved_at, batch_id=record.batch_id, values=kept) if kept else None


def decision_row(saved_at: datetime, record: Any) -> Decision:
    what, detail = outcome(record)
    return Decision(
        batch_id=record.batch_id,
        saved_at=saved_at,
        outcome=what,
        detail=detail,
        drift_share=record.drift.share if record.drift.report else None,
        metric=record.performance.value if record.performance else None,
        champion=record.champion.version if record.champion else None,
        drift_report=bool(record.drift.report),
        validation_report=bool(record.validation.report),
    )


def domain_view(spec: Any, now: datetime, reader: _Reader | None = None) -> DomainView:
    """One domain's part of the page (spec: `specs.DomainSpec`)."""
    from continuum import alert_delivery, decision, labels, registry

    reader = reader or _Reader()
    view = DomainView(
        name=spec.name,
        owner=spec.owner,
        primary_metric=spec.monitoring.primary_metric,
        floor=spec.monitoring.floor,
    )
    view.roles_read, roles = reader.read(
        MLFLOW, spec.name, "the champion and previous versions",
        lambda: (registry.champion(spec.name), registry.previous(spec.name)), view.unavailable,
    )
    if roles:
        view.champion, view.previous = role(roles[0], now), role(roles[1], now)
    view.decisions_read, saved = reader.read(
        S3, spec.name, "the decision records", lambda: decision.latest_saved(spec.name, DECISIONS_SHOWN), view.unavailable
    )
    for saved_at, record in saved or []:
        view.decisions.append(decision_row(saved_at, record))
    _, realised = reader.read(
        S3, spec.name, "the realised metrics", lambda: labels.realised_values(spec.name, [r for _, r in saved or []]),
        view.unavailable,
    )
    realised = realised or {}
    view.points = [
        p for p in (point(at, record, realised.get(record.batch_id)) for at, record in reversed(saved or []))
        if p is not None
    ]
    view.alerts_read, alerts = reader.read(
        S3, spec.name, "the open alerts", lambda: alert_delivery.open_alerts(spec.name), view.unavailable
    )
    view.alerts = alerts or []
    return view


def prompt_roles(name: str, scores: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The production prompt version and the candidates: version, model parameters, latest scores.

    `scores` maps a version to its scores in the latest evaluation record (`versions`).
    """
    from continuum.llm import prompts

    listed = prompts.versions(name)
    versions = {v["version"]: v for v in listed}
    production = prompts.production(name)

    def entry(version: str) -> dict[str, Any]:
        return {"version": version, "params": versions.get(version, {}).get("params"), "latest_scores": scores.get(version)}

    return (entry(production) if production else None), [entry(v) for v in prompts.candidates(name, listed)]


def assistant_view(spec: Any, reader: _Reader | None = None) -> AssistantView:
    """One assistant's part of the page (spec: `llm.specs.AssistantSpec`)."""
    from continuum import alert_delivery
    from continuum.llm import evaluation

    reader = reader or _Reader()
    view = AssistantView(name=spec.name, owner=spec.owner, primary_score=spec.primary_score)
    view.decision_read, view.latest_decision = reader.read(
        S3, spec.name, "the latest prompt evaluation", lambda: evaluation.latest_decision(spec.name), view.unavailable
    )
    scores = (view.latest_decision or {}).get("versions") or {}
    view.roles_read, roles = reader.read(
        MLFLOW, spec.name, "the prompt versions", lambda: prompt_roles(spec.name, scores), view.unavailable
    )
    if roles:
        view.production, view.candidates = roles
    view.alerts_read, alerts = reader.read(
        S3, spec.name, "the open alerts", lambda: alert_delivery.open_alerts(spec.name), view.unavailable
    )
    view.alerts = alerts or []
    return view


def build(now: datetime | None = None, names: Iterable[str] | None = None) -> Overview:
    """Every valid domain and assistant (or only `names`), and a line per spec file that does not load."""
    from continuum.llm.specs import load_assistants
    from continuum.specs import load_domains

    now = now or datetime.now(UTC)
    wanted = set(names) if names is not None else None
    domains, domain_errors = load_domains()
    assistants, assistant_errors = load_assistants()
    reader = _Reader()
    result = Overview(generated_at=now)
    result.domains = [domain_view(s, now, reader) for s in domains if wanted is None or s.name in wanted]
    result.assistants = [assistant_view(s, reader) for s in assistants if wanted is None or s.name in wanted]
    result.spec_errors = sorted({str(e) for e in (*domain_errors, *assistant_errors)})
    return result
