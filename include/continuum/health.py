"""What the hourly `continuum_health` DAG checks: the conditions nothing else notices.

A failing task pages through its callback, but a model nobody retrains, a feed that
stopped, or a production prompt whose safety rate crept up raise no error anywhere.
For every domain and assistant this module turns what is already stored (MLflow
aliases, S3 manifests, LLM scores and decisions) into `Condition`s and hands them to
`alert_delivery.apply`, which alerts on firing ones and sends `resolved` once for
cleared ones. Every function takes `now`, so tests move the clock instead of waiting.

No Airflow import: the DAG passes in what only Airflow knows (failed run counts, whether a
run is still going).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from continuum import storage
from continuum.alerts import Condition

if TYPE_CHECKING:
    from continuum.llm.specs import AssistantSpec
    from continuum.registry import ModelRef
    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)

GUARDRAIL_WINDOW = timedelta(days=1)
FAILED_RUNS_STATE = "health/state/failed_runs.json"
HEALTH_DAG = "continuum_health"
# The DAGs of a domain and of an assistant, by suffix (see dags/continuum_domains.py and continuum_assistants.py).
DOMAIN_DAGS = ("land", "decide")
ASSISTANT_DAGS = ("conversations_land", "prompt_eval")


def hour_of(now: datetime) -> str:
    """The health window a run belongs to: one per hour, the key of every side effect."""
    return f"{now.astimezone(UTC):%Y-%m-%dT%H}"


def digest_key(now: datetime, extension: str) -> str:
    return f"health/{hour_of(now)}.{extension}"


# --- conditions (pure) ---------------------------------------------------------------------------


def stale_condition(spec: DomainSpec, champion: ModelRef | None, now: datetime) -> Condition | None:
    """`model_stale` when the champion was trained longer ago than the spec's `schedule` allows.

    None without a champion (a domain that never trained has nothing to be stale) or
    when the schedule has no period (`@once`, null).
    """
    from continuum.registry import schedule_interval

    allowed = schedule_interval(spec.schedule)
    if champion is None or allowed is None:
        return None
    age = now - champion.created_at
    return Condition(
        kind="model_stale",
        domain=spec.name,
        owner=spec.owner,
        firing=age >= allowed,
        summary=f"champion v{champion.version} is {_days(age)} old; schedule {spec.schedule} allows {_days(allowed)}",
        facts={
            "champion_version": champion.version,
            "trained_at": champion.created_at.isoformat(timespec="seconds"),
            "age_hours": round(age.total_seconds() / 3600, 1),
            "allowed_hours": round(allowed.total_seconds() / 3600, 1),
            "schedule": spec.schedule,
        },
    )


def freshness_condition(
    name: str, owner: str, expected_every: timedelta | None, last_arrival: datetime | None, now: datetime, what: str
) -> Condition | None:
    """`data_missing` when nothing new arrived for longer than `expected_every` (None: not checked)."""
    if expected_every is None:
        return None
    age = None if last_arrival is None else now - last_arrival
    missing = age is None or age > expected_every
    since = "ever" if last_arrival is None else f"for {_days(age)}"
    return Condition(
        kind="data_missing",
        domain=name,
        owner=owner,
        firing=missing,
        summary=f"no new {what} {since}; expected every {_days(expected_every)}",
        facts={
            "last_arrival": last_arrival.isoformat(timespec="seconds") if last_arrival else None,
            "hours_since": None if age is None else round(age.total_seconds() / 3600, 1),
            "expected_every_hours": round(expected_every.total_seconds() / 3600, 2),
        },
    )


def guardrail_condition(
    spec: AssistantSpec, rates: Mapping[str, float | None], conversations: int, production: str | None
) -> Condition | None:
    """`prompt_guardrail_breach` when a safety rate of the production prompt is above the ceiling.

    None when there is no production prompt or too few of its conversations to judge.
    """
    ceiling = spec.monitoring.max_safety_rate
    if production is None or conversations < spec.monitoring.min_conversations:
        return None
    breached = {name: rate for name, rate in rates.items() if rate is not None and rate > ceiling}
    shown = ", ".join(f"{name}={rate:.3f}" for name, rate in breached.items()) or "all safety rates within"
    return Condition(
        kind="prompt_guardrail_breach",
        domain=spec.name,
        owner=spec.owner,
        firing=bool(breached),
        summary=f"production prompt v{production}: {shown} (ceiling {ceiling:.3f}) over the last day",
        facts={
            "production": production,
            "conversations": conversations,
            "ceiling": ceiling,
            **{f"rate_{name}": rate for name, rate in rates.items()},
        },
    )


def failure_condition(name: str, owner: str, failed_runs: int) -> Condition:
    """`task_failed` while runs of the domain's DAGs failed in the last hour; cleared otherwise."""
    return Condition(
        kind="task_failed",
        domain=name,
        owner=owner,
        firing=failed_runs > 0,
        summary=f"{failed_runs} DAG run(s) failed in the last hour",
        facts={"failed_runs_last_hour": failed_runs},
    )


# Alerts about one champion (their facts name its version); a newer champion starts with no labels of its own.
CHAMPION_KINDS = ("champion_below_floor", "realised_gap")


def replaced_champion_conditions(
    spec: DomainSpec, champion: ModelRef | None, open_alerts: Mapping[str, Mapping[str, Any]]
) -> list[Condition]:
    """Cleared `champion_below_floor` / `realised_gap` when the champion they were about has been replaced.

    `open_alerts` maps a kind to the alert last sent while it is open. Only an alert that
    names a different champion version clears: the same champion under its floor stays open.
    """
    found = []
    for kind in CHAMPION_KINDS:
        about = (open_alerts.get(kind) or {}).get("facts", {}).get("champion_version")
        if champion is None or about is None or str(about) == str(champion.version):
            continue
        found.append(
            Condition(
                kind=kind,
                domain=spec.name,
                owner=spec.owner,
                firing=False,
                summary=f"champion v{about} was replaced by v{champion.version}",
                facts={"replaced_version": str(about), "champion_version": champion.version},
            )
        )
    return found


def deadline_condition(name: str, owner: str, sent: Mapping[str, Any] | None, unfinished: bool) -> Condition | None:
    """A cleared `deadline_missed` once the run that missed its deadline has ended (None: nothing to clear).

    A run still going is left alone: its deadline callback already paged, and its end is
    what "back to normal" means. How it ended (success or failure) is the run's own alert.
    """
    if not sent or unfinished:
        return None
    return Condition(
        kind="deadline_missed",
        domain=name,
        owner=owner,
        firing=False,
        summary=f"run {sent.get('run_id')} of {sent.get('dag_id')} that missed its deadline has ended",
        facts={"dag_id": sent.get("dag_id"), "run_id": sent.get("run_id")},
    )


# --- reading what is stored ----------------------------------------------------------------------


def last_batch_at(domain: str) -> datetime | None:
    """When the domain's newest batch was registered (its manifest's write time), None if never."""
    times = [o["LastModified"] for o in storage.list_objects(f"batches/{domain}/") if o["Key"].endswith("/manifest.json")]
    return max(times) if times else None


def last_conversations_at(assistant: str) -> datetime | None:
    """When the assistant's newest conversation log was processed (its redaction manifest), None if never."""
    prefix = f"llm/redacted/{assistant}/"
    times = [o["LastModified"] for o in storage.list_objects(prefix) if o["Key"].endswith(".json")]
    return max(times) if times else None


def production_safety(spec: AssistantSpec, now: datetime) -> tuple[str | None, dict[str, float | None], int]:
    """(production version, safety rates, conversations) of the last day, from the stored scores.

    The production version is the newest decision record's `production_after`; the
    rates are the means of the safety scores over its conversations started in
    [now - 1 day, now), read from the score tables of the evaluation windows that
    end inside or after that span (a window is named `<start>-<end>`).
    """
    from continuum.storage import LlmKeys

    keys = LlmKeys(spec.name)
    decisions = [o for o in storage.list_objects(keys.decisions_prefix) if o["Key"].endswith(".json")]
    if not decisions:
        return None, {}, 0
    newest = max(decisions, key=lambda o: o["LastModified"])
    production = storage.get_json(newest["Key"]).get("production_after")
    if production is None:
        return None, {}, 0
    import pandas as pd

    start = now - GUARDRAIL_WINDOW
    tables = [o["Key"] for o in storage.list_objects(keys.scores_prefix) if o["Key"].endswith(".parquet")]
    frames = [storage.get_frame(key) for key in tables if _window_end(key) is None or _window_end(key) >= start]
    if not frames:
        return str(production), {}, 0
    table = pd.concat(frames, ignore_index=True).drop_duplicates("conversation_id", keep="last")
    started = pd.to_datetime(table["started_at"], utc=True, errors="coerce")
    rows = table[(table["version"].astype(str) == str(production)) & (started >= start) & (started < now)]
    rates = {
        name: (float(rows[name].dropna().mean()) if name in rows and rows[name].notna().any() else None)
        for name in spec.guardrails.safety_scores
    }
    return str(production), rates, int(len(rows))


def _window_end(key: str) -> datetime | None:
    """The end of the evaluation window a score table covers, from its name `<start>-<end>.parquet`."""
    stem = key.rsplit("/", 1)[-1].removesuffix(".parquet")
    try:
        return datetime.strptime(stem.rsplit("-", 1)[-1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def new_failed_runs(counts: Mapping[str, int], now: datetime) -> dict[str, int]:
    """Failed runs per domain/assistant since the previous health window, from total counts.

    `counts` are all-time failed DAG runs per name (what Airflow's API answers). The
    counts seen at the previous window are kept in S3, and a retried run of the same
    hour compares against the same baseline, so it ends where the first try would.
    The first run ever has no baseline and reports no new failures.
    """
    hour = hour_of(now)
    state = storage.get_json(FAILED_RUNS_STATE) if storage.exists(FAILED_RUNS_STATE) else None
    if state is None:
        before = dict(counts)
    elif state.get("hour") == hour:
        before = state.get("before", {})
    else:
        before = state.get("at", {})
    storage.put_json(FAILED_RUNS_STATE, {"hour": hour, "before": before, "at": dict(counts)})
    return {name: max(0, int(total) - int(before.get(name, total))) for name, total in counts.items()}


# --- one name, all checks ------------------------------------------------------------------------


def domain_conditions(
    spec: DomainSpec, now: datetime, failed_runs: int | None = None
) -> tuple[list[Condition], dict[str, Any] | None]:
    """The domain's conditions, and the current champion's newest realised record (late labels) if any.

    The realised record gives `champion_below_floor` and `realised_gap` through `labels.conditions`,
    the same conditions `<domain>_land` applied when the labels arrived: re-applied every hour they
    only count (noise control), and they resolve once when a newer record clears them, or when a
    new champion replaced the one they were about (`replaced_champion_conditions`).
    """
    from continuum import alert_delivery, labels, registry

    champion = registry.champion(spec.name)
    realised = labels.newest_realised(spec.name, champion.version) if champion is not None else None
    judged = labels.conditions(spec, realised) if realised is not None else []
    unjudged = [k for k in CHAMPION_KINDS if k not in {c.kind for c in judged}]
    opened = {kind: alert_delivery.open_alert(spec.name, kind) for kind in unjudged}
    found = [
        stale_condition(spec, champion, now),
        freshness_condition(
            spec.name, spec.owner, spec.monitoring.expected_every, last_batch_at(spec.name), now, "batch"
        ),
        *judged,
        *replaced_champion_conditions(spec, champion, {k: v for k, v in opened.items() if v}),
    ]
    if failed_runs is not None:
        found.append(failure_condition(spec.name, spec.owner, failed_runs))
    return [c for c in found if c is not None], realised


# What the digest shows of the champion's newest realised record.
REALISED_SHOWN = ("batch_id", "labels_id", "scored_by", "metric", "value", "floor", "holdout", "gap", "rows")


def assistant_conditions(spec: AssistantSpec, now: datetime, failed_runs: int | None = None) -> list[Condition]:
    production, rates, conversations = production_safety(spec, now)
    found = [
        freshness_condition(
            spec.name,
            spec.owner,
            spec.monitoring.expected_every,
            last_conversations_at(spec.name),
            now,
            "conversation logs",
        ),
        guardrail_condition(spec, rates, conversations, production),
    ]
    if failed_runs is not None:
        found.append(failure_condition(spec.name, spec.owner, failed_runs))
    return [c for c in found if c is not None]


def check(
    name: str,
    now: datetime,
    failed_runs: int | None = None,
    where: Mapping[str, Any] | None = None,
    run_unfinished: Callable[[str, str], bool] | None = None,
) -> dict[str, Any]:
    """Check one domain or assistant, send what fires or clears; returns its digest entry.

    `where` is the checking task (`alerts.task_location(context)`: run, try, log link);
    without it the alerts name the `continuum_health` DAG's `check` task only.
    `run_unfinished(dag_id, run_id)` says whether a DAG run is still queued or running (only
    Airflow knows); with it, an open `deadline_missed` resolves once its run has ended.
    A transient failure (MLflow, S3) raises, so the task retries: an error is not a healthy domain.
    """
    from continuum import alert_delivery
    from continuum.llm.specs import load_assistants
    from continuum.specs import get_domain, load_domains

    assistants = {s.name: s for s in load_assistants()[0]}
    realised = None
    if name in assistants:
        owner = assistants[name].owner
        conditions = assistant_conditions(assistants[name], now, failed_runs)
    elif name in {s.name for s in load_domains()[0]}:
        owner = get_domain(name).owner
        conditions, realised = domain_conditions(get_domain(name), now, failed_runs)
    else:
        raise LookupError(f"no domain or assistant '{name}' in include/domains or CONTINUUM_DOMAINS_PATH")
    late = alert_delivery.open_alert(name, "deadline_missed") if run_unfinished is not None else None
    if late:
        dag_id, run_id = late.get("dag_id"), late.get("run_id")
        ended = deadline_condition(name, owner, late, bool(dag_id and run_id) and run_unfinished(dag_id, run_id))
        conditions += [ended] if ended is not None else []
    occurrence = f"health:{hour_of(now)}"
    entry: dict[str, Any] = {"name": name, "kind": "assistant" if name in assistants else "domain", "checks": []}
    for condition in conditions:
        channels = alert_delivery.apply(
            condition, now=now, occurrence=occurrence, **{"dag_id": HEALTH_DAG, "task_id": "check", **(where or {})}
        )
        entry["checks"].append(
            {
                "kind": condition.kind,
                "firing": condition.firing,
                "summary": condition.summary,
                "facts": condition.facts,
                "sent_to": channels,
            }
        )
    if entry["kind"] == "domain":
        entry["realised"] = None if realised is None else {k: realised.get(k) for k in REALISED_SHOWN}
        entry["retrain"] = retrain_if_stale(get_domain(name), conditions, now)
    log.info(
        "event=health_checked name=%s firing=%s",
        name,
        ",".join(c["kind"] for c in entry["checks"] if c["firing"]) or "none",
    )
    return entry


def retrain_if_stale(spec: DomainSpec, conditions: list[Condition], now: datetime) -> dict | None:
    """With `retrain_on_schedule`, a stale champion gets a retrain that `<domain>_decide` performs.

    Returns the queued request (what it learns from, or nothing: then its decision waits
    for labels), or None when the champion is not stale or the spec does not ask for it.
    """
    from continuum import pipeline, registry

    stale = any(c.kind == "model_stale" and c.firing for c in conditions)
    if not (stale and spec.retrain_on_schedule):
        return None
    champion = registry.champion(spec.name)
    return pipeline.request_scheduled_retrain(spec, champion, now) if champion is not None else None


def names() -> list[dict[str, str]]:
    """Every valid domain and assistant, with its DAG ids (what the DAG counts failures of)."""
    from continuum.llm.specs import load_assistants
    from continuum.specs import load_domains

    return [
        *({"name": s.name, "dags": [f"{s.name}_{k}" for k in DOMAIN_DAGS]} for s in load_domains()[0]),
        *({"name": s.name, "dags": [f"{s.name}_{k}" for k in ASSISTANT_DAGS]} for s in load_assistants()[0]),
    ]


def write_digest(entries: list[dict[str, Any]], now: datetime) -> dict[str, str]:
    """The hour's digest, JSON and HTML, under `health/<hour>`; rewritten whole on a retry."""
    digest = {
        "at": now.astimezone(UTC).isoformat(timespec="seconds"),
        "firing": sorted(f"{e['name']}:{c['kind']}" for e in entries for c in e["checks"] if c["firing"]),
        "entries": sorted(entries, key=lambda e: e["name"]),
    }
    json_key = storage.put_json(digest_key(now, "json"), digest)
    html_key = storage.put_bytes(digest_key(now, "html"), render_html(digest).encode(), "text/html")
    return {"json": storage.uri(json_key), "html": storage.uri(html_key), "firing": len(digest["firing"])}


def render_html(digest: Mapping[str, Any]) -> str:
    rows = []
    for entry in digest["entries"]:
        for check_ in entry["checks"] or [{"kind": "-", "firing": False, "summary": "nothing to check"}]:
            state = "FIRING" if check_["firing"] else "ok"
            rows.append(
                f"<tr class='{state.lower()}'><td>{html.escape(entry['name'])}</td><td>{html.escape(check_['kind'])}</td>"
                f"<td>{state}</td><td>{html.escape(check_['summary'])}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Continuum health</title>"
        "<style>body{font-family:sans-serif}td{padding:2px 8px}.firing{background:#fdd}</style></head><body>"
        f"<h1>Continuum health at {html.escape(digest['at'])}</h1>"
        f"<p>{len(digest['firing'])} condition(s) firing. Runbook: docs/runbook.md</p>"
        "<table><tr><th>name</th><th>check</th><th>state</th><th>summary</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )


def _days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"
