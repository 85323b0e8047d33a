"""retrain_on_schedule: the health check, its clock moved forward, asks `<domain>_decide` for a
retrain of the stale champion, and the real DAG performs it: on the labelled batch the champion
never learnt from, then, with nothing new, a record that says it waits for labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_decide import decide, land

from continuum import batches, dagrun, decision, health, registry, storage
from continuum.storage import Keys

DOMAIN = "retrain_probe"
pytestmark = pytest.mark.slow


@pytest.fixture
def probe(spec_copy):
    """insurance_fraud under another name, retrained daily on schedule; any challenger is blessed."""
    spec_copy(
        "insurance_fraud",
        DOMAIN,
        schedule="@daily",
        retrain_on_schedule=True,
        monitoring={"floor": 0.0},  # no performance retrain: only the schedule asks for one
        blessing={"min_value": 0.0, "max_degradation": 1.0, "segment_column": None, "max_score_shift": None},
    )
    dagrun.reset()
    yield
    dagrun.reset()


def test_health_asks_the_decide_dag_to_retrain_a_stale_champion(loop, probe):
    def batch(seed: int) -> str:
        return land(DOMAIN, loop.batch("insurance_fraud", n=4000, seed=seed))

    first = decide(DOMAIN, batch(51))
    assert first.promoted
    unused = decide(DOMAIN, batch(52))  # labelled, and the champion is fresh: nothing to retrain for
    assert unused.challenger is None and not unused.retrain.triggered
    now = datetime.now(UTC)

    later = now + timedelta(days=2)  # the daily schedule's champion is stale by then
    request = health.check(DOMAIN, later)["retrain"]
    assert request["sources"] == [unused.batch_id] and request["champion_version"] == first.champion.version
    assert health.check(DOMAIN, later + timedelta(hours=1))["retrain"] == request  # asked again: the same request
    assert batches.pending(DOMAIN) == [request["retrain_id"]]  # queued once
    dagrun.run(f"{DOMAIN}_decide")
    record = decision.load(DOMAIN, request["retrain_id"])
    assert record.finished and record.retrain.reasons == ["schedule"] and not record.retrain.waiting_for_labels
    assert record.challenger is not None and record.promoted
    assert registry.champion(DOMAIN).version == record.challenger.version
    learnt = storage.get_json(Keys(DOMAIN).window(record.challenger.version))
    assert learnt == [first.batch_id, request["retrain_id"]]  # the champion's window plus the unused batch
    assert record.extra["scoring"].startswith("skipped") and batches.pending(DOMAIN) == []

    nothing_new = health.check(DOMAIN, later + timedelta(hours=2))["retrain"]  # the new champion, stale on that clock
    assert nothing_new["champion_version"] == record.challenger.version and nothing_new["sources"] == []
    dagrun.run(f"{DOMAIN}_decide")
    waiting = decision.load(DOMAIN, nothing_new["retrain_id"])
    assert waiting.finished and waiting.retrain.reasons == ["schedule"] and waiting.retrain.waiting_for_labels
    assert waiting.challenger is None and waiting.promotion.outcome == "no_challenger"
    assert storage.get_json(Keys(DOMAIN).retrain_request())["batch_ids"] == [nothing_new["retrain_id"]]
