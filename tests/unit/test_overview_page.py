"""The Continuum page's HTML: everything escaped, links only from valid names, the chart from points."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from continuum import overview_page
from continuum.overview import AssistantView, Decision, DomainView, Overview, Point, Role

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"


class Tags(HTMLParser):
    """Every start tag and attribute name, to check what the page really contains."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]


def parsed(text: str) -> Tags:
    tags = Tags()
    tags.feed(text)
    return tags


def hostile_overview() -> Overview:
    domain = DomainView(
        name="insurance_claim_risk", owner=HOSTILE, primary_metric=HOSTILE, floor=0.85, roles_read=True,
        decisions_read=True, alerts_read=True,
        champion=Role(version=HOSTILE, created_at=NOW - timedelta(days=2), age_seconds=2 * 86400, metrics={HOSTILE: 0.5}),
        decisions=[
            Decision(batch_id=HOSTILE, saved_at=NOW, outcome=HOSTILE, detail=HOSTILE, drift_report=True,
                     validation_report=True),
            Decision(batch_id="00000000000000aa", saved_at=NOW, outcome="promoted", detail=HOSTILE, drift_report=True,
                     validation_report=True, champion="2"),
        ],
        points=[Point(at=NOW, batch_id=HOSTILE, values={"champion": 0.9})],
        alerts=[{"kind": HOSTILE, "severity": HOSTILE, "summary": HOSTILE, "count": HOSTILE, "runbook": HOSTILE}],
        unavailable=[HOSTILE],
    )
    assistant = AssistantView(
        name="claims_assistant", owner=HOSTILE, primary_score="outcome", roles_read=True, decision_read=True,
        production={"version": HOSTILE, "params": {"model": HOSTILE}, "latest_scores": {"safety": {HOSTILE: 0.1}}},
        latest_decision={"window": HOSTILE, "reason": HOSTILE}, alerts_read=True,
    )
    return Overview(generated_at=NOW, domains=[domain], assistants=[assistant], spec_errors=[HOSTILE])


def test_text_from_specs_records_alerts_and_the_registry_is_escaped():
    page = overview_page.page(hostile_overview())
    tags = parsed(page)
    assert "script" not in tags.tags and "img" not in tags.tags
    assert not [a for a in tags.attributes if a.startswith("on")]
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10
    assert "<script" not in page


def test_report_links_come_only_from_a_valid_batch_id():
    page = overview_page.page(hostile_overview())
    links = re.findall(r"href='([^']*)'", page)
    reports = [link for link in links if link.startswith("reports/")]
    assert reports == [
        "reports/insurance_claim_risk/00000000000000aa/drift",
        "reports/insurance_claim_risk/00000000000000aa/validation",
    ]  # the hostile batch id got no link at all


@pytest.mark.parametrize(
    ("domain", "batch_id", "kind", "expected"),
    [
        ("insurance_fraud", "0123456789abcdef", "drift", "reports/insurance_fraud/0123456789abcdef/drift"),
        ("insurance_fraud", "0123456789abcdef", "validation", "reports/insurance_fraud/0123456789abcdef/validation"),
        ("insurance_fraud", "../../../etc/pas", "drift", None),
        ("insurance_fraud", "0123456789ABCDEF", "drift", None),
        ("../secrets", "0123456789abcdef", "drift", None),
        ("insurance_fraud", "0123456789abcdef", "raw", None),
    ],
)
def test_report_href(domain, batch_id, kind, expected):
    assert overview_page.report_href(domain, batch_id, kind) == expected


def points(*values: dict[str, float]) -> list[Point]:
    return [Point(at=NOW + timedelta(hours=i), batch_id=f"{i:016x}", values=v) for i, v in enumerate(values)]


def test_the_chart_draws_one_line_per_series_and_the_floor():
    svg = overview_page.chart(
        points({"champion": 0.9}, {"champion": 0.88, "realised": 0.84, "estimated": 0.86}, {"champion": 0.91, "realised": 0.8}),
        floor=0.85, metric="accuracy",
    )
    tags = parsed(svg)
    assert tags.tags.count("circle") == 6  # one mark per value
    assert tags.tags.count("polyline") == 2  # champion and realised have two or more points; estimated one
    assert tags.tags.count("line") == 1 and "floor 0.85" in svg
    assert "realised (late labels)" in svg and "estimated (before labels)" in svg


def test_a_lower_value_is_drawn_lower():
    svg = overview_page.chart(points({"champion": 0.9}, {"champion": 0.7}))
    first, second = (float(y) for y in re.findall(r"<circle cx='[^']*' cy='([^']*)'", svg))
    assert second > first  # SVG y grows downwards


def test_a_chart_without_points_says_what_fills_it():
    assert "No metric yet" in overview_page.chart([], floor=0.85)


def test_unread_sources_are_said_so_never_shown_as_none():
    view = DomainView(name="insurance_fraud", owner="o", primary_metric="recall", floor=0.3,
                      unavailable=["MLflow at http://127.0.0.1:1 is unreachable: start it or set MLFLOW_TRACKING_URI"])
    card = overview_page.domain_card(view)
    assert "MLflow at http://127.0.0.1:1 is unreachable" in card
    assert "Champion and previous unknown" in card and "Decisions unknown" in card and "Open alerts unknown" in card
    assert ">none<" not in card and "No decision yet" not in card and "No open alert" not in card
