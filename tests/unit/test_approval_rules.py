"""`blessing.approval`: when a person must answer, what the answer means for `promote`, and the request's text.

The wait itself, in the real decide DAG with Airflow's ApprovalOperator, is
`tests/scenarios/test_approval.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from continuum import approval, decision
from continuum.specs import get_domain

BATCH = "0123456789abcdef"


def spec(setting: str = "required"):
    base = get_domain("insurance_claim_risk")
    return base.model_copy(update={"blessing": base.blessing.model_copy(update={"approval": setting})})


def record(blessed: bool = True, answer: str | None = None, version: str = "4", **approval_fields) -> decision.DecisionRecord:
    rec = decision.DecisionRecord(domain="insurance_claim_risk", batch_id=BATCH)
    rec.challenger = decision.Challenger(version=version, run_id="r", blessed=blessed, metrics={"accuracy": 0.91})
    rec.champion_before = decision.ModelVersion(version="3", run_id="r3")
    rec.extra["champion_on_holdout"] = {"accuracy": 0.89}
    if answer is not None:
        rec.approval = decision.Approval(outcome=answer, version=approval_fields.pop("answered", version), **approval_fields)
    return rec


def test_unattended_is_the_default_and_needs_no_answer():
    assert get_domain("insurance_claim_risk").blessing.approval == "none"
    assert not approval.pending(spec("none"), record()) and approval.refusal(spec("none"), record()) is None


def test_only_a_blessed_challenger_without_an_answer_is_pending():
    assert approval.pending(spec(), record())
    assert not approval.pending(spec(), record(blessed=False))
    assert not approval.pending(spec(), record(answer="approved"))
    assert approval.pending(spec(), record(answer="approved", answered="3")), "an answer about another version"


@pytest.mark.parametrize(
    ("answer", "fields", "expected"),
    [
        ("approved", {"by": "ann"}, None),
        ("rejected", {"by": "ann", "comment": "needs review"}, "rejected by ann: needs review"),
        ("rejected", {}, "rejected by an approver"),
        ("timed_out", {}, "no approval within 72 h; the champion stays"),
        (None, {}, "blessing.approval is required and nobody approved v4"),
    ],
)
def test_promote_goes_on_only_after_an_approval_of_that_version(answer, fields, expected):
    refused = approval.refusal(spec(), record(answer=answer, **fields))
    assert refused == expected if expected is None else refused.startswith(expected)


def test_an_approval_of_an_older_version_does_not_count():
    assert approval.refusal(spec(), record(answer="approved", answered="3")).startswith("blessing.approval is required")


def test_the_request_compares_challenger_and_champion_on_the_same_holdout():
    text = approval.comparison_md(spec(), record())
    assert "Challenger **v4** against champion **v3**" in text and "| accuracy | 0.9100 | 0.8900 |" in text


def test_the_answer_is_recorded_once_per_version(s3):
    rec = record()
    rec.save()
    at = datetime(2026, 12, 2, tzinfo=UTC)
    first = approval.record_answer("insurance_claim_risk", BATCH, [approval.REJECT], "ann", at, comment="no")
    again = approval.record_answer("insurance_claim_risk", BATCH, [approval.APPROVE], "bob", at)
    assert first.outcome == again.outcome == "rejected" and again.by == "ann"
    saved = decision.load("insurance_claim_risk", BATCH).approval
    assert (saved.outcome, saved.by, saved.comment, saved.version) == ("rejected", "ann", "no", "4")
    timed = record(version="5")
    timed.save()
    assert approval.record_answer("insurance_claim_risk", BATCH, [approval.REJECT], None, at, timed_out=True).outcome == "timed_out"
