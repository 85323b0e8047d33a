"""The score step: reason codes and the distribution recorded, or scores refused when they fail their checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from continuum import decision, pipeline, registry, scoring, simulate, training
from continuum.specs import get_domain
from continuum.storage import Keys

DOMAIN = "insurance_claim_risk"
BATCH = "00000000000000c1"


@pytest.fixture(scope="module")
def fitted():
    spec = get_domain(DOMAIN)
    small = spec.model_copy(update={"model": spec.model.model_copy(update={"params": {"max_iter": 30}})})
    train = simulate.generate(DOMAIN, n=1000, seed=11)
    return training.fit(small, train), train


@pytest.fixture
def champion(s3, fitted, monkeypatch):
    """A champion v7 (its model and training sample) and a validated batch, without MLflow."""
    model, train = fitted
    keys = Keys(DOMAIN)
    s3.put_frame(keys.reference("7"), train)
    s3.put_frame(keys.validated(BATCH), simulate.generate(DOMAIN, n=200, seed=12, faults=["unlabelled"]))
    ref = registry.ModelRef(name=DOMAIN, version="7", created_at=datetime.now(UTC))
    monkeypatch.setattr(registry, "champion", lambda name: ref)
    monkeypatch.setattr(registry, "load", lambda name, version: model)
    monkeypatch.setattr(pipeline, "finish", lambda record: record.save())  # no MLflow run to attach to
    return s3, keys


def test_scoring_writes_reason_codes_and_records_the_score_distribution(champion):
    s3, keys = champion
    pipeline.run_scoring(DOMAIN, BATCH)
    scores = s3.get_frame(keys.scores(BATCH))
    assert {"claim_probability", "premium", "reason_1", "reason_2", "reason_3"} <= set(scores.columns)
    assert scores["reason_1"].notna().mean() > 0.9
    summary = decision.load(DOMAIN, BATCH).score_summary
    assert summary.rows == 200
    assert summary.columns["premium"]["mean"] == pytest.approx(scores["premium"].mean())


def test_scores_outside_their_range_fail_the_task_and_are_not_written(champion, monkeypatch):
    s3, keys = champion
    spec = get_domain(DOMAIN)
    typo = spec.model_copy(update={"scoring": spec.scoring.model_copy(update={"base_premium": 0.0})})
    monkeypatch.setattr(pipeline, "get_domain", lambda name: typo)
    with pytest.raises(scoring.ScoreCheckFailed, match=rf"batch {BATCH} \(champion v7\).*premium has 200 values outside"):
        pipeline.run_scoring(DOMAIN, BATCH)
    assert not s3.exists(keys.scores(BATCH))
    assert not decision.load(DOMAIN, BATCH).done("score")  # a retry scores again
