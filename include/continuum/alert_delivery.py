"""Who gets an alert, how often, and through which channels.

Routing lives in one Airflow Variable, `continuum_alert_routes` (declared in
`airflow_settings.yaml`), a JSON/YAML mapping:

    dedup_minutes: 60              # same kind, same domain within this window -> one alert with a count
    owners:
      risk-team:                   # a spec's `owner`
        - {channel: slack, conn_id: slack_risk_team}
        - {channel: email, to: [risk-oncall@example.com], min_severity: error}
      "*":                         # every owner without a route of its own
        - {channel: slack, conn_id: slack_oncall}

Every alert also goes, whatever the routes say, to a structured log line, to the S3
audit trail (`alerts/<domain>/...json`) and, when `CONTINUUM_ALERT_WEBHOOK` is set,
to that URL as JSON. A channel that fails is logged and never stops the others.

Noise control keeps one small state object per domain and kind in S3
(`alert-state/<domain>/<kind>.json`): a repeat inside the window only raises the
count of the alert already sent (its audit record is updated), an occurrence already
seen (a retried task) changes nothing, and a condition that clears sends `resolved`
exactly once.

Slack and email are Airflow provider notifiers, so their senders are registered by
`plugins/continuum_notifier.py` (`register`); this module imports no Airflow. Where
no sender is registered (plain Python, the CLI) those routes are skipped with a log line.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from continuum.alerts import (
    KINDS,
    RUNBOOK,
    SEVERITY_ORDER,
    UNKNOWN,
    WEBHOOK_ENV,
    Alert,
    Condition,
    _one_line,
    alert_key,
    format_text,
    log_line,
    resolved_alert,
)

log = logging.getLogger("continuum.alerts")

ROUTES_VARIABLE = "continuum_alert_routes"
ROUTES_ENV = f"AIRFLOW_VAR_{ROUTES_VARIABLE.upper()}"  # how Airflow itself reads a variable from the environment
DEFAULT_DEDUP_MINUTES = 60.0
ROUTED_CHANNELS = ("slack", "email")
WEBHOOK_TIMEOUT_SECONDS = 5.0
_MAX_OCCURRENCES = 50  # remembered per domain and kind, enough to recognise a retried task

Sender = Callable[[Alert, "Route"], None]


class RoutesError(ValueError):
    """The routing variable cannot be used; the message names the variable and the entry."""


@dataclass(frozen=True)
class Route:
    channel: str
    conn_id: str | None = None
    to: tuple[str, ...] = ()
    min_severity: str = "info"

    @property
    def label(self) -> str:
        return f"{self.channel}:{self.conn_id or 'default'}"


@dataclass(frozen=True)
class Routing:
    owners: dict[str, tuple[Route, ...]] = field(default_factory=dict)
    dedup_minutes: float = DEFAULT_DEDUP_MINUTES

    def for_owner(self, owner: str) -> tuple[Route, ...]:
        return self.owners.get(owner, self.owners.get("*", ()))


def parse_routes(value: str | Mapping[str, Any] | None, source: str = ROUTES_VARIABLE) -> Routing:
    """Validate the routing variable (JSON text or a mapping); errors name the entry at fault."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return Routing()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RoutesError(f"{source}: not valid JSON ({exc}); see airflow_settings.yaml for the format") from exc
    if not isinstance(value, Mapping):
        raise RoutesError(f"{source}: expected a mapping with 'owners' (and optionally 'dedup_minutes')")
    dedup = value.get("dedup_minutes", DEFAULT_DEDUP_MINUTES)
    if isinstance(dedup, bool) or not isinstance(dedup, int | float) or dedup < 0:
        raise RoutesError(f"{source}: dedup_minutes must be a number >= 0, got {dedup!r}")
    owners = value.get("owners") or {}
    if not isinstance(owners, Mapping):
        raise RoutesError(f"{source}: owners must map an owner to a list of routes")
    parsed: dict[str, tuple[Route, ...]] = {}
    for owner, routes in owners.items():
        if not isinstance(routes, list):
            raise RoutesError(f"{source}: owners.{owner} must be a list of routes")
        parsed[str(owner)] = tuple(_route(r, f"{source}: owners.{owner}[{i}]") for i, r in enumerate(routes))
    return Routing(owners=parsed, dedup_minutes=float(dedup))


def _route(entry: Any, where: str) -> Route:
    if not isinstance(entry, Mapping):
        raise RoutesError(f"{where}: must be a mapping like {{channel: slack, conn_id: ...}}")
    channel = entry.get("channel")
    if channel not in ROUTED_CHANNELS:
        raise RoutesError(f"{where}: channel must be one of {', '.join(ROUTED_CHANNELS)}, got {channel!r}")
    severity = entry.get("min_severity", "info")
    if severity not in SEVERITY_ORDER:
        raise RoutesError(f"{where}: min_severity must be one of {', '.join(SEVERITY_ORDER)}, got {severity!r}")
    to = entry.get("to") or []
    to = [to] if isinstance(to, str) else to
    if channel == "slack" and not entry.get("conn_id"):
        raise RoutesError(f"{where}: a slack route needs conn_id (a slackwebhook connection)")
    if channel == "email" and (not isinstance(to, list) or not to):
        raise RoutesError(f"{where}: an email route needs 'to', a list of addresses")
    return Route(channel=channel, conn_id=entry.get("conn_id"), to=tuple(str(a) for a in to), min_severity=severity)


# The adapter (plugins/continuum_notifier.py) plugs in what needs Airflow.
_senders: dict[str, Sender] = {}


def _routes_from_environment() -> str | None:
    return os.environ.get(ROUTES_ENV)


_routes_loader: Callable[[], str | None] = _routes_from_environment


def register(channel: str, sender: Sender) -> None:
    """Make a routed channel deliverable in this process (the Airflow plugin registers slack and email)."""
    if channel not in ROUTED_CHANNELS:
        raise ValueError(f"unknown channel '{channel}'; use one of {', '.join(ROUTED_CHANNELS)}")
    _senders[channel] = sender


def set_routes_loader(loader: Callable[[], str | None]) -> None:
    """Where the routing variable's text comes from (default: the AIRFLOW_VAR_ environment variable)."""
    global _routes_loader
    _routes_loader = loader


def routing() -> Routing:
    """The current routing; an unreadable or invalid variable is logged and routes nowhere extra."""
    try:
        return parse_routes(_routes_loader())
    except Exception as exc:  # log, S3 and webhook still get the alert
        log.error("event=alert_routes_invalid variable=%s error=%s", ROUTES_VARIABLE, _one_line(exc))
        return Routing()


def deliver(alert: Alert, now: datetime | None = None, occurrence: str | None = None) -> list[str]:
    """Noise control, then every channel; returns the channels that took it. Never raises."""
    now = now or datetime.now(UTC)
    rules = routing()
    try:
        state = _load_state(alert.domain, alert.kind)
    except Exception as exc:  # without state, send: a duplicate beats a lost page
        log.warning("event=alert_state_failed domain=%s kind=%s error=%s", alert.domain, alert.kind, _one_line(exc))
        return send(alert, rules)
    action, alert, state = admit(state, alert, now, timedelta(minutes=rules.dedup_minutes), occurrence)
    if action == "duplicate":
        log.info("event=alert_duplicate domain=%s kind=%s occurrence=%s", alert.domain, alert.kind, occurrence)
        return []
    if action == "collapse":
        return _collapse(alert, state)
    channels = send(alert, rules)
    state["audit_key"] = alert_key(alert)
    _save_state(state)
    return channels


def admit(
    state: dict[str, Any] | None,
    alert: Alert,
    now: datetime,
    window: timedelta,
    occurrence: str | None = None,
) -> tuple[str, Alert, dict[str, Any]]:
    """('send' | 'collapse' | 'duplicate', the alert with its count, the new state). Pure."""
    stamp = _stamp(now)
    state = dict(state or {})
    seen = list(state.get("occurrences", []))
    if occurrence is not None and occurrence in seen and state.get("open"):
        return "duplicate", alert, state
    if occurrence is not None:
        seen = [*seen, occurrence][-_MAX_OCCURRENCES:]
    is_open = bool(state.get("open"))
    count = int(state.get("count", 0)) + 1 if is_open else 1
    first_seen = state.get("first_seen") if is_open else stamp
    new_state = {
        "domain": alert.domain,
        "kind": alert.kind,
        "owner": alert.owner,
        "open": True,
        "count": count,
        "first_seen": first_seen,
        "last_seen": stamp,
        "last_sent": state.get("last_sent") if is_open else None,
        "audit_key": state.get("audit_key"),
        "occurrences": seen,
    }
    alert = alert.with_(count=count, first_seen=first_seen, timestamp=stamp)
    last_sent = _parse(new_state["last_sent"])
    if is_open and last_sent is not None and now - last_sent < window and new_state["audit_key"]:
        return "collapse", alert, new_state
    new_state["last_sent"] = stamp
    return "send", alert, new_state


def resolve(domain: str, kind: str, now: datetime | None = None, **where: Any) -> list[str]:
    """Send `resolved` once if `kind` had alerted for `domain`; returns the channels (empty: nothing open).

    `where` names the task that saw the condition clear (its run and log link), like a firing alert.
    """
    try:
        state = _load_state(domain, kind)
    except Exception as exc:  # unknown whether it was open: better silent than a false all-clear
        log.warning("event=alert_state_failed domain=%s kind=%s error=%s", domain, kind, _one_line(exc))
        return []
    if not state or not state.get("open"):
        return []
    channels = send(resolved_alert(state, now, **where), routing())
    _save_state({**state, "open": False, "resolved_at": _stamp(now or datetime.now(UTC)), "occurrences": []})
    return channels


def apply(condition: Condition, now: datetime | None = None, occurrence: str | None = None, **where: Any) -> list[str]:
    """A firing condition alerts (with noise control); a cleared one resolves what had alerted."""
    if condition.firing:
        return deliver(condition.alert(now, **where), now=now, occurrence=occurrence)
    return resolve(condition.domain, condition.kind, now, **where)


def send(alert: Alert, rules: Routing) -> list[str]:
    """Every channel, each on its own: one failing never stops the next. Returns those that took it."""
    level = logging.INFO if alert.kind == "resolved" else logging.ERROR if alert.severity in ("error", "critical") else logging.WARNING
    log.log(level, "event=alert %s", log_line(alert))
    channels = ["log"]
    try:
        from continuum import storage

        storage.put_json(alert_key(alert), alert.to_dict())
        channels.append("s3")
    except Exception as exc:  # the log line above already holds the alert
        log.warning("event=alert_channel_failed channel=s3 kind=%s error=%s", alert.kind, _one_line(exc))
    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if url and post_webhook(url, {"text": format_text(alert), "alert": alert.to_dict()}):
        channels.append("webhook")
    for route in rules.for_owner(alert.owner):
        if SEVERITY_ORDER[alert.severity or "error"] < SEVERITY_ORDER[route.min_severity]:
            continue
        sender = _senders.get(route.channel)
        if sender is None:
            log.warning("event=alert_channel_unavailable channel=%s reason=no_sender_in_this_process", route.label)
            continue
        try:
            sender(alert, route)
            channels.append(route.label)
        except Exception as exc:  # a broken channel must not hide the alert from the others
            log.warning("event=alert_channel_failed channel=%s kind=%s error=%s", route.label, alert.kind, _one_line(exc))
    return channels


def post_webhook(url: str, payload: Mapping[str, Any], timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> bool:
    """POST the alert as JSON (`text` keeps it Slack-compatible); False and a log line on any failure.

    Plain urllib on purpose: the generic webhook must work without Airflow (CLI, tests).
    """
    if not url.startswith(("https://", "http://")):
        log.warning("event=alert_channel_failed channel=webhook error=%s must be an http(s) URL", WEBHOOK_ENV)
        return False
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked above
            response.read()
    except Exception as exc:  # network, HTTP status and timeout errors alike: log, never raise
        log.warning("event=alert_channel_failed channel=webhook error=%s", _one_line(exc))
        return False
    return True


def recorded(domain: str | None = None, since: datetime | None = None, kind: str | None = None) -> list[dict]:
    """The alerts in the S3 audit trail, oldest first, filtered by domain, time and kind."""
    from continuum import storage

    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown alert kind '{kind}'; use one of {', '.join(KINDS)}")
    prefix = f"alerts/{domain}/" if domain else "alerts/"
    found = []
    for key in storage.list_keys(prefix):
        if not key.endswith(".json"):
            continue
        payload = storage.get_json(key)
        if kind is not None and payload.get("kind") != kind:
            continue
        if since is not None and (_parse(payload.get("timestamp")) or since) < since:
            continue
        found.append(payload)
    return sorted(found, key=lambda a: (a.get("timestamp") or "", a.get("kind") or ""))


def open_alerts(domain: str) -> list[dict]:
    """The domain's (or assistant's) alerts that are open now, newest first.

    Open means noise control has not seen the condition clear (`resolved` not sent yet).
    Each entry is the state (kind, count, first_seen, last_seen) with the summary and
    severity of the alert that was sent. An unreadable store raises: an error is not "no alerts".
    """
    from continuum import storage
    from continuum.storage import Keys

    found = []
    for key in storage.list_keys(Keys(domain).alert_states):
        state = storage.get_json(key)
        if not state.get("open"):
            continue
        sent = _sent(state)
        found.append({
            "kind": state.get("kind"),
            "severity": sent.get("severity") or KINDS.get(state.get("kind"), "error"),
            "summary": sent.get("summary") or "",
            "count": int(state.get("count", 1)),
            "first_seen": state.get("first_seen"),
            "last_seen": state.get("last_seen"),
            "runbook": sent.get("runbook") or f"{RUNBOOK}#{state.get('kind')}",
        })
    return sorted(found, key=lambda a: a["last_seen"] or "", reverse=True)


def open_alert(domain: str, kind: str) -> dict[str, Any] | None:
    """The alert last sent for `kind` while it is still open (its facts, run and batch), else None.

    What a check needs to clear a condition someone else raised: which champion was below
    the floor, which run missed its deadline. An unreadable store raises.
    """
    state = _load_state(domain, kind)
    if not state or not state.get("open"):
        return None
    return _sent(state)


def _sent(state: Mapping[str, Any]) -> dict[str, Any]:
    """The audit-trail copy of the alert an open state last sent ({} when it was not kept)."""
    from continuum import storage

    key = state.get("audit_key")
    return storage.get_json(key) if key and storage.exists(key) else {}


def _collapse(alert: Alert, state: dict[str, Any]) -> list[str]:
    """A repeat inside the window: the alert already sent now carries the new count."""
    from continuum import storage

    log.info("event=alert_collapsed domain=%s kind=%s count=%d", alert.domain, alert.kind, alert.count)
    channels = ["log"]
    try:
        key = state["audit_key"]
        sent = storage.get_json(key) if storage.exists(key) else alert.to_dict()
        storage.put_json(key, {**sent, "count": alert.count, "last_seen": alert.timestamp})
        channels.append("s3")
    except Exception as exc:
        log.warning("event=alert_channel_failed channel=s3 kind=%s error=%s", alert.kind, _one_line(exc))
    _save_state(state)
    return channels


def _state_key(domain: str, kind: str) -> str:
    from continuum.storage import Keys

    return Keys(domain or UNKNOWN).alert_state(kind)


def _load_state(domain: str, kind: str) -> dict[str, Any] | None:
    from continuum import storage

    key = _state_key(domain, kind)
    return storage.get_json(key) if storage.exists(key) else None


def _save_state(state: dict[str, Any]) -> None:
    from continuum import storage

    try:
        storage.put_json(_state_key(state["domain"], state["kind"]), state)
    except Exception as exc:  # the alert went out; only the next dedup decision is affected
        log.warning("event=alert_state_failed domain=%s kind=%s error=%s", state["domain"], state["kind"], _one_line(exc))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
