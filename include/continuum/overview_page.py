"""The Continuum page as one HTML document: tables and an inline SVG chart, no script.

Every piece of text that comes from a spec, a decision record, an alert or the
registry goes through `_e` (html.escape), and every link is built from a validated
domain name and batch id, so nothing stored in S3 or MLflow can inject markup. The app
that serves it (`plugins/continuum_view.py`) adds a Content-Security-Policy that allows
no script at all.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from continuum.overview import SERIES, AssistantView, DomainView, Overview, Point

REPORTS = {"drift": "drift report", "validation": "validation report"}
SERIES_STYLE = {
    "champion": ("#1f6feb", "", "champion on labelled batch"),
    "realised": ("#1a7f37", "", "realised (late labels)"),
    "estimated": ("#bc4c00", "5,3", "estimated (before labels)"),
}
OUTCOME_CLASS = {
    "promoted": "good", "kept": "good", "quarantined": "bad", "rolled_back": "bad", "refused": "warn",
    "not_blessed": "warn", "not_approved": "warn", "waiting_for_labels": "warn", "in_progress": "muted",
}
_MAX_METRICS = 4

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px 24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 6px}h3{font-size:14px;margin:14px 0 4px;color:#57606a}
.sub{color:#57606a;margin:0 0 12px}.card{border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;margin:0 0 16px}
table{border-collapse:collapse;width:100%;margin:2px 0 6px}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-weight:600;color:#57606a;font-size:12px}td.num{font-variant-numeric:tabular-nums}code{font-size:12px}
.notice{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px;margin:6px 0}
.down{background:#ffebe9;border-color:#ff8182}.muted{color:#57606a}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;background:#eaeef2}
.good{background:#dafbe1}.bad{background:#ffebe9}.warn{background:#fff8c5}
.critical,.error{background:#ffebe9}.warning{background:#fff8c5}.info{background:#ddf4ff}
.chart{margin:4px 0}svg text{font-size:11px;fill:#57606a}a{color:#0969da}
"""


def _e(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    return f"{value:.{digits}f}"


def _age(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _when(moment: datetime | str | None) -> str:
    if isinstance(moment, datetime):
        return moment.strftime("%Y-%m-%d %H:%M UTC") if moment.utcoffset() is not None else moment.isoformat()
    return _e(moment or "–")


def report_href(domain: str, batch_id: str, kind: str) -> str | None:
    """The page-relative link of a batch report, or None when the name or id is not one."""
    from continuum.batches import check_batch_id
    from continuum.specs import NAME_PATTERN

    try:
        check_batch_id(batch_id)
    except ValueError:
        return None
    if kind not in REPORTS or not re.fullmatch(NAME_PATTERN, domain):
        return None
    return "reports/" + "/".join(urllib.parse.quote(part, safe="") for part in (domain, batch_id, kind))


def chart(points: Sequence[Point], floor: float | None = None, metric: str = "", width: int = 560, height: int = 170) -> str:
    """An inline SVG line chart of `points` (one polyline per series in `SERIES`), with the floor dashed."""
    values = [v for p in points for v in p.values.values()]
    if not values:
        return "<p class='muted'>No metric yet: the chart fills in as labelled batches are decided.</p>"
    low, high = min([*values, *([floor] if floor is not None else [])]), max([*values, *([floor] if floor is not None else [])])
    pad = (high - low) * 0.1 or 0.05
    low, high = low - pad, high + pad
    left, right, top, bottom = 44, 12, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    times = [p.at.timestamp() for p in points]
    span = max(times) - min(times)

    def x(index: int) -> float:
        share = (times[index] - min(times)) / span if span else (index / (len(points) - 1) if len(points) > 1 else 0.5)
        return left + share * plot_w

    def y(value: float) -> float:
        return top + (high - value) / (high - low) * plot_h

    parts = [
        f"<svg class='chart' role='img' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>{_e(metric)} over time</title>",
        f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#f6f8fa'/>",
        f"<text x='{left - 4}' y='{top + 4}' text-anchor='end'>{_num(high, 2)}</text>",
        f"<text x='{left - 4}' y='{top + plot_h}' text-anchor='end'>{_num(low, 2)}</text>",
        f"<text x='{left}' y='{height - 6}'>{_when(points[0].at)}</text>",
        f"<text x='{left + plot_w}' y='{height - 6}' text-anchor='end'>{_when(points[-1].at)}</text>",
    ]
    if floor is not None:
        parts.append(
            f"<line x1='{left}' x2='{left + plot_w}' y1='{y(floor):.1f}' y2='{y(floor):.1f}' stroke='#cf222e' "
            f"stroke-dasharray='4,3'><title>floor {_num(floor)}</title></line>"
            f"<text x='{left + plot_w - 2}' y='{y(floor) - 3:.1f}' text-anchor='end'>floor {_num(floor, 2)}</text>"
        )
    for name in SERIES:
        color, dash, label = SERIES_STYLE[name]
        marks = [(x(i), y(p.values[name]), p) for i, p in enumerate(points) if name in p.values]
        if not marks:
            continue
        if len(marks) > 1:
            path = " ".join(f"{mx:.1f},{my:.1f}" for mx, my, _ in marks)
            parts.append(f"<polyline fill='none' stroke='{color}' stroke-width='2' stroke-dasharray='{dash}' points='{path}'/>")
        for mx, my, p in marks:
            tip = f"{label}: {_num(p.values[name])} (batch {p.batch_id}, {_when(p.at)})"
            parts.append(f"<circle cx='{mx:.1f}' cy='{my:.1f}' r='3' fill='{color}'><title>{_e(tip)}</title></circle>")
    parts.append("</svg>")
    legend = " ".join(
        f"<span class='badge' style='background:none;border:1px solid {SERIES_STYLE[n][0]}'>{_e(SERIES_STYLE[n][2])}</span>"
        for n in SERIES
        if any(n in p.values for p in points)
    )
    return "".join(parts) + f"<div>{legend}</div>"


def _notices(lines: Iterable[str], cls: str = "notice down") -> str:
    return "".join(f"<div class='{cls}'>{_e(line)}</div>" for line in lines)


def _metrics(metrics: Mapping[str, float], primary: str) -> str:
    others = [(k, v) for k, v in sorted(metrics.items()) if k != primary and not k.startswith("champion_")]
    return ", ".join(f"{_e(k)} {_num(v)}" for k, v in others[:_MAX_METRICS]) or "–"


def _roles(view: DomainView) -> str:
    if not view.roles_read:
        return "<p class='muted'>Champion and previous unknown: MLflow could not be read (see above).</p>"
    rows = []
    for name, ref in (("champion", view.champion), ("previous", view.previous)):
        if ref is None:
            rows.append(f"<tr><td>{name}</td><td colspan='4' class='muted'>none</td></tr>")
            continue
        rows.append(
            f"<tr><td>{name}</td><td>v{_e(ref.version)}</td>"
            f"<td class='num'>{_e(view.primary_metric)} {_num(ref.metrics.get(view.primary_metric))}</td>"
            f"<td class='num'>{_metrics(ref.metrics, view.primary_metric)}</td>"
            f"<td>{_age(ref.age_seconds)} (trained {_when(ref.created_at)})</td></tr>"
        )
    return (
        "<table><tr><th>role</th><th>version</th><th>primary metric</th><th>other metrics</th><th>age</th></tr>"
        + "".join(rows) + "</table>"
    )


def _alerts(alerts: list[dict[str, Any]], read: bool) -> str:
    if not read:
        return "<p class='muted'>Open alerts unknown: S3 could not be read (see above).</p>"
    if not alerts:
        return "<p class='muted'>No open alert.</p>"
    rows = "".join(
        f"<tr><td><span class='badge {_e(a.get('severity'))}'>{_e(a.get('severity'))}</span></td>"
        f"<td><code>{_e(a.get('kind'))}</code></td><td class='num'>{_e(a.get('count'))}×</td>"
        f"<td>{_e(a.get('summary'))}</td><td>since {_e(a.get('first_seen'))}, last {_e(a.get('last_seen'))}</td>"
        f"<td><code>{_e(a.get('runbook'))}</code></td></tr>"
        for a in alerts
    )
    return "<table><tr><th>severity</th><th>kind</th><th>count</th><th>summary</th><th>when</th><th>runbook</th></tr>" + rows + "</table>"


def _decisions(view: DomainView) -> str:
    if not view.decisions_read:
        return "<p class='muted'>Decisions unknown: S3 could not be read (see above).</p>"
    if not view.decisions:
        return "<p class='muted'>No decision yet: land a batch under <code>landing/" + _e(view.name) + "/</code>.</p>"
    rows = []
    for d in view.decisions:
        links = []
        for kind, available in (("drift", d.drift_report), ("validation", d.validation_report)):
            href = report_href(view.name, d.batch_id, kind) if available else None
            if href:
                links.append(f"<a href='{_e(href)}'>{_e(kind)}</a>")
        rows.append(
            f"<tr><td>{_when(d.saved_at)}</td><td><code>{_e(d.batch_id)}</code></td>"
            f"<td><span class='badge {OUTCOME_CLASS.get(d.outcome, '')}'>{_e(d.outcome)}</span></td>"
            f"<td>{_e(d.detail) or '–'}</td><td class='num'>{_num(d.drift_share, 2)}</td><td class='num'>{_num(d.metric)}</td>"
            f"<td>{'v' + _e(d.champion) if d.champion else '–'}</td><td>{' · '.join(links) or '–'}</td></tr>"
        )
    return (
        "<table><tr><th>saved</th><th>batch</th><th>outcome</th><th>why</th><th>drift share</th>"
        f"<th>{_e(view.primary_metric)}</th><th>champion after</th><th>reports</th></tr>" + "".join(rows) + "</table>"
    )


def domain_card(view: DomainView) -> str:
    return (
        f"<section class='card' id='domain-{_e(view.name)}'><h2>{_e(view.name)}</h2>"
        f"<p class='sub'>owner {_e(view.owner)} · primary metric {_e(view.primary_metric)} · floor {_num(view.floor)}</p>"
        + _notices(view.unavailable)
        + "<h3>Models</h3>" + _roles(view)
        + "<h3>Open alerts</h3>" + _alerts(view.alerts, view.alerts_read)
        + f"<h3>{_e(view.primary_metric)} over time</h3>"
        + (chart(view.points, view.floor, view.primary_metric) if view.decisions_read else "<p class='muted'>–</p>")
        + "<h3>Last decisions</h3>" + _decisions(view)
        + "</section>"
    )


def _prompt_row(role: str, entry: Mapping[str, Any]) -> str:
    params = entry.get("params") or {}
    scores = entry.get("latest_scores") or {}
    ci = scores.get("ci") or []
    ci_text = f" [{_num(ci[0])}, {_num(ci[1])}]" if len(ci) == 2 else ""
    safety = ", ".join(f"{_e(k)} {_num(v)}" for k, v in sorted((scores.get("safety") or {}).items())) or "–"
    return (
        f"<tr><td>{_e(role)}</td><td>v{_e(entry.get('version'))}</td><td>{_e(params.get('model') or '–')}</td>"
        f"<td class='num'>{_e(scores.get('n', '–'))}</td><td class='num'>{_num(scores.get('primary'))}{ci_text}</td>"
        f"<td class='num'>{safety}</td><td class='num'>{_num(scores.get('cost_per_conversation'), 4)}</td></tr>"
    )


def assistant_card(view: AssistantView) -> str:
    if not view.roles_read:
        versions = "<p class='muted'>Prompt versions unknown: MLflow could not be read (see above).</p>"
    elif view.production is None and not view.candidates:
        versions = "<p class='muted'>No prompt registered yet.</p>"
    else:
        rows = ([_prompt_row("production", view.production)] if view.production else [])
        rows += [_prompt_row("candidate", c) for c in view.candidates]
        versions = (
            f"<table><tr><th>role</th><th>version</th><th>model</th><th>n</th><th>{_e(view.primary_score)} (95% CI)</th>"
            "<th>safety rates</th><th>cost / conversation</th></tr>" + "".join(rows) + "</table>"
        )
    latest = view.latest_decision
    if not view.decision_read:
        evaluated = "<p class='muted'>Latest evaluation unknown: S3 could not be read (see above).</p>"
    elif latest is None:
        evaluated = "<p class='muted'>No evaluation yet: land conversation logs under <code>llm/conversations/" + _e(view.name) + "/</code>.</p>"
    else:
        evaluated = (
            f"<p>window <code>{_e(latest.get('window'))}</code> ({_e(latest.get('conversations'))} conversations, "
            f"mode {_e(latest.get('mode'))}): production v{_e(latest.get('production_before'))} → "
            f"v{_e(latest.get('production_after'))}, {'promoted' if latest.get('promoted') else 'not promoted'}"
            f" — {_e(latest.get('reason'))}</p>"
        )
    return (
        f"<section class='card' id='assistant-{_e(view.name)}'><h2>{_e(view.name)}</h2>"
        f"<p class='sub'>assistant · owner {_e(view.owner)} · primary score {_e(view.primary_score)}</p>"
        + _notices(view.unavailable)
        + "<h3>Prompts</h3>" + versions
        + "<h3>Latest evaluation</h3>" + evaluated
        + "<h3>Open alerts</h3>" + _alerts(view.alerts, view.alerts_read)
        + "</section>"
    )


def page(overview: Overview) -> str:
    """The whole page; `overview` comes from `continuum.overview.build`."""
    body = [
        "<h1>Continuum</h1>",
        f"<p class='sub'>Champions, decisions, alerts and prompts, read at {_when(overview.generated_at)}. "
        "Reload for fresh data. What each alert means: <code>docs/runbook.md</code>.</p>",
        _notices(overview.spec_errors, "notice"),
    ]
    if not overview.domains and not overview.assistants:
        body.append("<p class='muted'>No domain or assistant spec loaded: add one under <code>include/domains/</code>.</p>")
    if overview.domains:
        body.append("<nav class='sub'>" + " · ".join(
            f"<a href='#domain-{_e(d.name)}'>{_e(d.name)}</a>" for d in overview.domains
        ) + (" · " if overview.assistants else "") + " · ".join(
            f"<a href='#assistant-{_e(a.name)}'>{_e(a.name)}</a>" for a in overview.assistants
        ) + "</nav>")
    body += [domain_card(d) for d in overview.domains]
    body += [assistant_card(a) for a in overview.assistants]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Continuum</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
        "<body>" + "".join(body) + "</body></html>"
    )


def error_page(message: str) -> str:
    """A whole page that says what failed and what to do, when not even the specs could be read."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Continuum</title>"
        f"<style>{STYLE}</style></head><body><h1>Continuum</h1>{_notices([message])}</body></html>"
    )
