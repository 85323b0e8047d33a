"""estimated_drop from the real `<domain>_decide` DAG: an unlabelled batch whose rows crowd the
decision boundary lowers the champion's CBPE estimate; the owner hears it on Slack, email and
the webhook from the `score` task, a second such batch only counts, and a batch like the
training data sends `resolved` once.

A logistic-regression probe on logistic data: its probabilities are calibrated, so the estimate
drops by construction when the features shrink toward the boundary (tests/unit/test_performance_estimate.py).
"""

from __future__ import annotations

from urllib.parse import quote

import probe_domain
import pytest
import yaml

from continuum import alert_delivery

DOMAIN = "estimate_probe"
DAG_ID = f"{DOMAIN}_decide"
pytestmark = pytest.mark.slow

SPEC = probe_domain.spec(
    DOMAIN,
    "A probe domain whose champion is calibrated: its CBPE estimate tracks the batch's rows.",
    monitoring={"max_estimated_drop": 0.05},
)


def _rows(n: int, seed: int, spread: float = 1.0):
    """Logistic data; `spread` < 1 moves the rows toward the decision boundary (a covariate shift)."""
    return probe_domain.rows(n, seed, spread=spread, id_prefix=f"s{seed}-")


@pytest.fixture
def probe(tmp_path, monkeypatch):
    from continuum import dagrun

    directory = tmp_path / "specs"
    directory.mkdir()
    (directory / f"{DOMAIN}.yaml").write_text(yaml.safe_dump(SPEC))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(directory))
    dagrun.reset()
    yield
    dagrun.reset()


def _alerts(oncall, kind: str) -> list[dict]:
    return [h["body"]["alert"] for h in oncall.http.on("/hook") if h["body"]["alert"]["kind"] == kind]


def test_a_large_estimated_drop_warns_on_every_channel_counts_and_resolves(loop, oncall, probe):
    from alert_receivers import MAIL_TO, mail_text

    first = loop.ingest(DOMAIN, _rows(1500, seed=0))  # labelled: the first champion
    assert first["promoted"] is True and first["estimate"] is None

    crowded = loop.ingest(DOMAIN, _rows(800, seed=1, spread=0.3).drop(columns="y"))  # unlabelled, near the boundary
    estimate = crowded["estimate"]
    assert estimate["drop"] > 0.05 and estimate["version"] == first["champion"]["version"]
    assert crowded["promoted"] is False  # an estimate never promotes (nor retrains: no labels to learn from)
    [alert] = _alerts(oncall, "estimated_drop")
    assert (alert["dag_id"], alert["task_id"], alert["try_number"], alert["batch_id"]) == (
        DAG_ID,
        "score",
        1,
        crowded["batch_id"],
    )
    assert alert["severity"] == "warning" and alert["owner"] == "probe-team"
    assert alert["facts"]["estimated"] == pytest.approx(estimate["value"])
    assert alert["log_url"].endswith(f"/dags/{DAG_ID}/runs/{quote(alert['run_id'])}/tasks/score?try_number=1")
    [slack] = [p["body"]["text"] for p in oncall.http.on("/slack/oncall") if "estimated_drop" in p["body"]["text"]]
    assert slack.startswith(f"[WARNING] estimated_drop {DOMAIN}: estimated accuracy=")
    [mail] = [m for m in oncall.mail.messages if m["Subject"].startswith(f"[continuum warning] estimated_drop {DOMAIN}: ")]
    assert mail["X-Envelope-To"] == MAIL_TO and mail_text(mail) == slack

    again = loop.ingest(DOMAIN, _rows(800, seed=2, spread=0.3).drop(columns="y"))  # the same drop: counted only
    assert again["estimate"]["drop"] > 0.05
    assert len(_alerts(oncall, "estimated_drop")) == 1
    [recorded] = alert_delivery.recorded(DOMAIN, kind="estimated_drop")
    assert recorded["count"] == 2

    recovered = loop.ingest(DOMAIN, _rows(800, seed=3).drop(columns="y"))  # rows like the training data
    assert recovered["estimate"]["drop"] <= 0.05
    [resolved] = _alerts(oncall, "resolved")
    assert resolved["facts"]["resolves"] == "estimated_drop" and resolved["task_id"] == "score"
    assert resolved["run_id"] != alert["run_id"]
    [mailed] = [m for m in oncall.mail.messages if m["Subject"].startswith(f"[continuum info] resolved {DOMAIN}: ")]
    assert "estimated_drop" in mailed["Subject"]
    loop.ingest(DOMAIN, _rows(800, seed=4).drop(columns="y"))  # still fine: nothing more
    assert len(_alerts(oncall, "resolved")) == 1
