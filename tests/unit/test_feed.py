"""The simulator feed lands the story's next batch for a domain, in order."""

from __future__ import annotations

from continuum import landing
from continuum.simulate import feed


def test_feed_lands_the_cycle_in_order(s3, monkeypatch):
    monkeypatch.setattr(feed, "batch_rows", lambda domain: 200)
    kinds = []
    for _ in range(3):
        landed = feed.land_next("insurance_claim_risk")
        kinds.append(landed["kind"])
        assert landed["key"].startswith("landing/insurance_claim_risk/")
        landing.register_landed("insurance_claim_risk")
    assert kinds == [label for label, _ in feed.CYCLE[:3]]
    assert feed.batches_landed("insurance_claim_risk") == 3


def test_batch_rows_come_from_the_spec():
    assert feed.batch_rows("insurance_fraud") == 12000
    assert feed.batch_rows("insurance_claim_risk") == 3000


def test_feed_lands_conversation_logs_that_the_intake_announces(s3):
    from continuum.llm import intake

    landed = feed.land_conversations("shopping_assistant")
    assert landed["key"].startswith("llm/conversations/shopping_assistant/") and landed["key"].endswith(".jsonl")
    assert intake.announce_new("shopping_assistant") == [landed["key"]]
    assert intake.announce_new("shopping_assistant") == []
