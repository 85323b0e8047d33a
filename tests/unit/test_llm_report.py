"""The evaluation report's quality-per-dollar plot, on hand-made summaries."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import probe_assistant

from continuum.llm import quality_cost_plot
from continuum.llm.compare import pareto_front
from continuum.llm.report import render

SPEC = probe_assistant.spec(evaluation={"max_cost_increase": 0.1})


def summary(points: dict[str, tuple[float | None, float | None]]) -> dict:
    entries = {
        v: {"n": 100, "primary": q, "ci": None, "scores": {}, "safety": {}, "cost_per_conversation": c}
        for v, (q, c) in points.items()
    }
    front = pareto_front(entries)
    for v, entry in entries.items():
        entry["pareto"] = v in front
    return entries


def circles(svg: str) -> dict[str, str]:
    """{version: class} of every plotted point, read from the SVG as XML (so it is well-formed)."""
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    return {
        re.match(r"version (\S+):", c.find(f"{ns}title").text).group(1): c.get("class") for c in root.iter(f"{ns}circle")
    }


def test_the_plot_marks_the_pareto_front_and_leaves_out_versions_without_a_cost():
    plotted = quality_cost_plot.svg(summary({"1": (0.3, 0.01), "2": (0.5, 0.02), "3": (0.4, 0.03), "4": (0.6, None)}), "outcome")
    assert circles(plotted) == {"1": "front", "2": "front", "3": "dominated"}  # 3: 2 is better and cheaper
    assert plotted.count("<polyline") == 1  # the front joined, cheapest first


def test_one_version_and_none_plot_without_error():
    assert circles(quality_cost_plot.svg(summary({"1": (0.3, 0.01)}), "outcome")) == {"1": "front"}
    assert "<svg" not in quality_cost_plot.svg(summary({"1": (None, 0.01)}), "outcome")


def test_the_report_names_the_front_and_the_cost_cap():
    record = {"production_before": "1", "production_after": "1", "promoted": False, "reason": "r"}
    page = render("shop", "w", summary({"1": (0.3, 0.01), "2": (0.5, 0.02), "3": (0.4, 0.03)}), record, {}, SPEC)
    assert "<h2>Quality per dollar</h2>" in page and "the Pareto front" in page and ": 1, 2." in page
    assert "by at most 10%" in page
    assert circles(page[page.index("<svg") : page.index("</svg>") + 6]) == {"1": "front", "2": "front", "3": "dominated"}
