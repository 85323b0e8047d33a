"""The evaluation's HTML report: one self-contained page a person reads without tools or JavaScript."""

from __future__ import annotations

from html import escape
from typing import Any

from continuum.llm import quality_cost_plot

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.promoted{color:#11662b}.kept{color:#8a4b00}.blocked{color:#a31515}code{background:#f3f3f3;padding:0 3px}
"""


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else escape(str(value))


def _ci(entry: dict) -> str:
    ci = entry.get("ci")
    if not ci or ci[0] is None:
        return _number(entry.get("mean"))
    return f"{_number(entry.get('mean'))} <small>[{_number(ci[0])}, {_number(ci[1])}]</small>"


def _tools_note(entry: dict) -> str:
    """Under the version: when its tool schemas changed, or when no hash told which ones it served with."""
    tools = entry.get("tool_schemas") or {}
    if tools.get("changed"):
        return f"<br><small class='blocked'>{escape(tools.get('note') or 'tool schemas changed')}</small>"
    if tools.get("validated_against") == "spec":
        return "<br><small>tool calls checked against the spec's tools (the version recorded none)</small>"
    return ""


def _version_table(summary: dict, roles: dict[str, str], primary: str) -> str:
    names = sorted({n for entry in summary.values() for n, score in entry["scores"].items() if score["n"]})
    names.sort(key=lambda name: name != primary)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for version, entry in summary.items():
        role = escape(roles.get(version, ""))
        cells = "".join(
            f"<td>{_ci(entry['scores'][n])} <small>n={entry['scores'][n]['n']}</small></td>" for n in names
        )
        rows.append(f"<tr><td>{escape(version)} {role}{_tools_note(entry)}</td><td>{entry['n']}</td>{cells}</tr>")
    return f"<table><tr><th>version</th><th>conversations</th>{head}</tr>{''.join(rows)}</table>"


def _judge_section(judge: dict | None, shown: int = 20) -> str:
    """Whether the judge counted, its agreement with people, and the conversations they disagree on."""
    if judge is None:
        return "<h2>Judge</h2><p>No judge ran for this window (no <code>llm_default</code> connection).</p>"
    agreement = judge["agreement"]
    parts = [f"<h2>Judge</h2><p>{escape(judge['reason'])}. Model <code>{escape(str(judge.get('model')))}</code>."]
    cache = judge.get("cache") or {}
    if cache.get("hit_rate") is not None:
        parts.append(f" Response cache: {cache['hits']} hits, {cache['misses']} calls (hit rate {cache['hit_rate']:.0%}).")
    parts.append("</p>")
    if agreement.get("confusion"):
        labels = agreement["confusion"]["labels"]
        head = "".join(f"<th>judge: {escape(label)}</th>" for label in labels)
        body = "".join(
            f"<tr><td>people: {escape(label)}</td>{''.join(f'<td>{n}</td>' for n in row)}</tr>"
            for label, row in zip(labels, agreement["confusion"]["matrix"], strict=True)
        )
        parts.append(
            f"<p>Cohen's kappa {_number(agreement['kappa'])}, observed agreement {_number(agreement['observed'])} "
            f"on {agreement['n']} conversations rated by both.</p><table><tr><th></th>{head}</tr>{body}</table>"
        )
    versions = judge.get("versions") or {}
    if versions:
        rows = "".join(
            f"<tr><td>{escape(v)}</td><td>{e['judged']}</td><td>{_ci(e)}</td></tr>" for v, e in versions.items()
        )
        parts.append(f"<table><tr><th>version</th><th>judged</th><th>mean judge score</th></tr>{rows}</table>")
    disagreements = agreement.get("disagreements") or []
    if disagreements:
        items = "".join(
            f"<tr><td>{escape(d['conversation_id'])}</td><td>{escape(d['version'])}</td><td>{d['human']}</td>"
            f"<td>{d['judge']}</td><td>{escape(d.get('reason') or '')}</td></tr>"
            for d in disagreements[:shown]
        )
        more = f"<p>and {len(disagreements) - shown} more.</p>" if len(disagreements) > shown else ""
        parts.append(
            f"<h3>Where people and the judge disagree ({len(disagreements)})</h3><table><tr><th>conversation</th>"
            f"<th>version</th><th>people</th><th>judge</th><th>judge's reason</th></tr>{items}</table>{more}"
        )
    return "".join(parts)


def _quality_cost(summary: dict, primary: str, spec) -> str:
    front = [v for v, entry in summary.items() if entry.get("pareto")]
    cap = spec.evaluation.max_cost_increase if spec is not None else None
    rule = (
        f" A promotion may raise the mean cost per conversation by at most {cap:.0%} "
        "(the candidate's upper confidence bound against production's mean)."
        if cap is not None
        else " No cap on the cost a promotion may bring (<code>evaluation.max_cost_increase</code>)."
    )
    return (
        "<h2>Quality per dollar</h2><p>Mean primary score against mean cost per conversation. Filled: the "
        "Pareto front, versions no other version matches or beats on both with a strict gain on one: "
        f"{escape(', '.join(front)) or 'none'}.{rule}</p>" + quality_cost_plot.svg(summary, primary or "primary")
    )


def render(
    assistant: str, window: str, summary: dict, record: dict, decision: dict, spec=None, judge: dict | None = None
) -> str:
    """The page: the decision and why, each version's scores with CIs, the guardrails, quality per dollar, the judge."""
    before, after = record.get("production_before"), record.get("production_after")
    roles = {str(v): "(production)" for v in [before] if v is not None}
    css = "promoted" if record.get("promoted") else "kept"
    verdict = (
        f"version {after} promoted to production" if record.get("promoted") else f"production stays {before}"
    )
    blocked = "".join(
        f"<li class='blocked'><b>{escape(v)}</b>: {escape(why)}</li>"
        for v, why in decision.get("blocked", {}).items()
    )
    primary = spec.primary_score if spec is not None else ""
    confidence = f"{spec.evaluation.confidence:.0%}" if spec is not None else "95%"
    guardrails = ""
    if spec is not None:
        g = spec.guardrails
        guardrails = (
            f"<p>Primary score <code>{escape(primary)}</code> (a candidate's CI lower bound must exceed production's "
            f"upper bound at {spec.evaluation.confidence:.0%}); safety scores "
            f"{', '.join(f'<code>{escape(s)}</code>' for s in g.safety_scores)} may not exceed production's by more "
            f"than {g.non_inferiority_margin:.2f}; at least {spec.evaluation.min_conversations} conversations "
            f"per version.</p>"
        )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Prompt evaluation {escape(assistant)} {escape(window)}</title><style>{_STYLE}</style></head><body>
<h1>Prompt evaluation: {escape(assistant)}</h1>
<p>Window ending {escape(window)}: {record.get("conversations", 0)} conversations scored,
{record.get("quarantined", 0)} log lines quarantined.</p>
<h2 class="{css}">Decision: {escape(verdict)}</h2>
<p>{escape(str(record.get("reason", "")))}</p>
{f"<ul>{blocked}</ul>" if blocked else ""}
<h2>Rules</h2>{guardrails}
<h2>Scores per version</h2>
<p>Mean with its {confidence} confidence interval (Wilson for rates, bootstrap for means) and the number of
conversations the score applies to.</p>
{_version_table(summary, roles, primary) if summary else "<p>No conversations in this window.</p>"}
{_quality_cost(summary, primary, spec) if summary else ""}
{_judge_section(judge)}
</body></html>
"""
