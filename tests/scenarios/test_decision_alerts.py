"""champion_below_floor and challenger_rejected_repeatedly, raised by the real `<domain>_decide`
DAG and received by the local Slack, email (SMTP) and webhook stand-ins, with the deciding task's location,
the count of a repeat, and the `resolved` message when the condition clears.

Three batches of a retail probe (its rules baseline becomes the first champion, so the
first batch already has a champion to judge): the owner's floor is out of reach, then a
blessing threshold the challenger clears.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import yaml
from alert_receivers import MAIL_TO, mail_text

from continuum import alert_delivery

DOMAIN = "alert_probe"
DAG_ID = f"{DOMAIN}_decide"
pytestmark = pytest.mark.slow


@pytest.fixture
def probe(spec_copy):
    """retail_recommender under another name, with a floor no model reaches and one rejection to alert."""
    from continuum import dagrun

    path, document = spec_copy(
        "retail_recommender",
        DOMAIN,
        owner="probe-team",
        monitoring={"floor": 0.99},
        blessing={"alert_after_rejections": 1, "max_degradation": 1.0, "segment_column": None, "max_score_shift": None},
    )
    dagrun.reset()

    def bless_at(min_value: float) -> None:
        document["blessing"]["min_value"] = min_value
        path.write_text(yaml.safe_dump(document))

    yield bless_at
    dagrun.reset()


def _texts(oncall, path: str) -> list[str]:
    return [p["body"]["text"] for p in oncall.http.on(path)]


def _where(alert: dict) -> tuple:
    return alert["dag_id"], alert["task_id"], alert["try_number"]


def test_decision_alerts_reach_slack_email_and_the_webhook_with_the_task_a_count_and_resolved(loop, oncall, probe):
    def ingest(seed: int) -> dict:
        return loop.ingest(DOMAIN, loop.batch("retail_recommender", n=3000, seed=seed))

    first = ingest(41)
    assert first["champion"]["version"] == "1" and not first["promoted"]  # the rules baseline still serves
    assert first["performance"]["value"] < 0.99 and first["challenger"]["blessed"] is False
    hooks = {h["body"]["alert"]["kind"]: h["body"]["alert"] for h in oncall.http.on("/hook")}
    assert set(hooks) == {"champion_below_floor", "challenger_rejected_repeatedly"}
    for alert in hooks.values():
        assert _where(alert) == (DAG_ID, "promote", 1) and alert["batch_id"] == first["batch_id"]
        assert alert["run_id"].startswith("manual__") and alert["owner"] == "probe-team"
        assert alert["log_url"].endswith(f"/dags/{DAG_ID}/runs/{quote(alert['run_id'])}/tasks/promote?try_number=1")
    slack = _texts(oncall, "/slack/oncall")
    assert sorted(t.splitlines()[0].split(":")[0] for t in slack) == [
        f"[CRITICAL] champion_below_floor {DOMAIN}",
        f"[WARNING] challenger_rejected_repeatedly {DOMAIN}",
    ]
    assert all(f"log={hooks['champion_below_floor']['log_url']}" in t for t in slack if "champion_below_floor" in t)
    mails = {m["Subject"].split(" ")[2]: m for m in oncall.mail.messages}  # "[continuum <severity>] <kind> <domain>: ..."
    assert set(mails) == set(hooks) and all(m["X-Envelope-To"] == MAIL_TO for m in mails.values())
    assert sorted(mail_text(m) for m in mails.values()) == sorted(slack)

    second = ingest(42)  # the same two conditions again: counted, not sent again
    assert "performance" in second["retrain"]["reasons"] and second["challenger"]["blessed"] is False
    assert len(_texts(oncall, "/slack/oncall")) == 2 and len(oncall.http.on("/hook")) == 2
    assert len(oncall.mail.messages) == 2
    counts = {a["kind"]: a["count"] for a in alert_delivery.recorded(DOMAIN)}
    assert counts == {"champion_below_floor": 2, "challenger_rejected_repeatedly": 2}

    probe(0.5)  # the owner agrees to bless what clears 0.5: the next challenger replaces the champion
    third = ingest(43)
    assert third["promoted"] is True
    resolved = [t for t in _texts(oncall, "/slack/oncall") if t.startswith("[INFO] resolved")]
    assert sorted(t.splitlines()[0].split(": ")[1].split(" ")[0] for t in resolved) == [
        "challenger_rejected_repeatedly",
        "champion_below_floor",
    ]
    assert any("alerted 2 times" in t for t in resolved)
    mailed = [m["Subject"] for m in oncall.mail.messages if m["Subject"].startswith(f"[continuum info] resolved {DOMAIN}: ")]
    assert len(mailed) == 2
    assert sorted(a["facts"]["resolves"] for a in alert_delivery.recorded(DOMAIN, kind="resolved")) == [
        "challenger_rejected_repeatedly",
        "champion_below_floor",
    ]
