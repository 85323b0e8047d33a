"""Quality against cost per conversation, one point per prompt version, as inline SVG.

Inline SVG rather than a matplotlib PNG: the report stays one self-contained, offline page
whose text (version labels, axis values) can be searched and read by a screen reader, and
the record task does not import a plotting library for a handful of points.
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT, MARGIN = 560, 340, 64
FRONT, OTHER = "#11662b", "#777"


def _axis(values: list[float]) -> tuple[float, float]:
    """The data range padded by a tenth on each side (a single value gets a range of its own)."""
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1e-3
    return low - pad, high + pad


def _at(value: float, low: float, high: float, start: float, end: float) -> float:
    return start + (value - low) / (high - low) * (end - start)


def svg(summary: dict[str, dict[str, Any]], primary: str) -> str:
    """The scatter, with versions on the Pareto front (`summary[v]["pareto"]`) filled and joined."""
    points = [
        (version, entry["cost_per_conversation"], entry["primary"], bool(entry.get("pareto")))
        for version, entry in summary.items()
        if entry.get("primary") is not None and entry.get("cost_per_conversation") is not None
    ]
    if not points:
        return f"<p>No version has both a <code>{escape(primary)}</code> and a <code>cost</code> score.</p>"
    (x0, x1), (y0, y1) = _axis([p[1] for p in points]), _axis([p[2] for p in points])
    left, right, top, bottom = MARGIN, WIDTH - MARGIN / 2, MARGIN / 2, HEIGHT - MARGIN

    def x(value: float) -> float:
        return round(_at(value, x0, x1, left, right), 1)

    def y(value: float) -> float:
        return round(_at(value, y0, y1, bottom, top), 1)

    front = sorted((p for p in points if p[3]), key=lambda p: p[1])
    parts = [
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{top}" stroke="#333"/>',
        f'<text x="{(left + right) / 2}" y="{HEIGHT - 12}" text-anchor="middle">cost per conversation (USD)</text>',
        f'<text x="14" y="{(top + bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(top + bottom) / 2})">{escape(primary)} (mean)</text>',
        f'<text x="{left}" y="{bottom + 18}" text-anchor="middle">{x0:.4g}</text>',
        f'<text x="{right}" y="{bottom + 18}" text-anchor="middle">{x1:.4g}</text>',
        f'<text x="{left - 6}" y="{bottom}" text-anchor="end">{y0:.3g}</text>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{y1:.3g}</text>',
    ]
    if len(front) > 1:
        line = " ".join(f"{x(p[1])},{y(p[2])}" for p in front)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{FRONT}" stroke-dasharray="4 3"/>')
    for version, cost, quality, on_front in points:
        colour = FRONT if on_front else OTHER
        label = f"version {version}: {primary} {quality:.4g}, cost {cost:.4g}" + (" (Pareto front)" if on_front else "")
        parts.append(
            f'<circle class="{"front" if on_front else "dominated"}" cx="{x(cost)}" cy="{y(quality)}" r="5" '
            f'fill="{colour if on_front else "#fff"}" stroke="{colour}"><title>{escape(label)}</title></circle>'
            f'<text x="{x(cost) + 8}" y="{y(quality) - 6}" fill="{colour}">{escape(version)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(primary)} against cost per conversation per version" '
        f'font-family="system-ui,sans-serif" font-size="12">{"".join(parts)}</svg>'
    )
