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


def render(assistant: str, window: str, summary: dict, record: dict, decision: dict, spec=None) -> str:
    """The page: the decision and why, each version's scores with CIs, the guardrails."""
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
</body></html>
"""
