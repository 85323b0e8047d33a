"""The decision record: one JSON document per batch that says what happened to it and why.

Each step of the loop fills in its part and saves the record beside the batch
(`batches/<domain>/<batch_id>/decision.json`); the CLI prints it as its last line.
One type for the whole loop, so every consumer reads the same keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from continuum import storage
from continuum.storage import Keys

RetrainReason = Literal["drift", "performance", "schedule", "no_champion"]
Step = Literal["gate", "monitor", "train", "promote", "score"]


class Validation(BaseModel):
    success: bool | None = None
    failed: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list, description="checks of severity warn that failed")
    report: str | None = None
    reason: str | None = None


class Drift(BaseModel):
    detected: bool = False
    share: float = 0.0
    columns: list[str] = Field(default_factory=list)
    report: str | None = None
    not_compared: list[str] = Field(
        default_factory=list,
        description="feature columns the champion's reference lacks (added to the spec after it was trained)",
    )


class Performance(BaseModel):
    metric: str
    value: float | None = None
    floor: float


class Retrain(BaseModel):
    triggered: bool = False
    reasons: list[RetrainReason] = Field(default_factory=list)
    # Asked for on a batch without labels: nothing new to learn from, so the retrain
    # waits for the next labelled batch (which names this one in `carried_from`).
    waiting_for_labels: bool = False
    carried_from: list[str] = Field(default_factory=list)


class ModelVersion(BaseModel):
    version: str
    metrics: dict[str, float] = Field(default_factory=dict)
    run_id: str | None = None
    card: str | None = Field(None, description="URI of the version's model card (model_card.md in its run)")


class Challenger(ModelVersion):
    blessed: bool = False
    why_not: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(
        default_factory=dict, description="the estimator's values of the params the spec sets or tunes"
    )
    # Notes for the reviewer that do not refuse: input columns with permutation importance <= 0.
    flags: list[str] = Field(default_factory=list)


class Baselines(BaseModel):
    """The simple models (class prior, logistic regression) trained on the challenger's window, on its holdout."""

    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    best: str | None = Field(None, description="the baseline best on the primary metric")
    gain: float | None = Field(None, description="challenger minus best on the primary metric; > 0 is better")
    required: float | None = Field(None, description="blessing.min_gain_over_baseline; null: recorded, not judged")


class ScoreSummary(BaseModel):
    """The distribution of one batch's scores, checked (`scoring.check_scores`) before they were written."""

    rows: int
    columns: dict[str, dict[str, float]] = Field(
        description="score column -> mean and quantiles p01, p05, p25, p50, p75, p95, p99"
    )
    flagged: float | None = Field(None, description="share of rows flagged (fraud), else null")


class Shadow(BaseModel):
    """The registered challenger, loaded as scoring loads it, scoring this batch before `champion` moves."""

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    score_shift: float | None = None
    max_score_shift: float | None = None


class Approval(BaseModel):
    """A person's answer on a blessed challenger (`blessing.approval: required`).

    `timed_out`: nobody answered within `blessing.approval_timeout_hours`; the champion stays.
    """

    outcome: Literal["approved", "rejected", "timed_out"]
    by: str | None = None
    at: datetime | None = None
    comment: str | None = None
    version: str  # the challenger version the answer is about


class Promotion(BaseModel):
    """What the promote step did and why: `promoted`, `not_blessed`, `not_approved`, `refused`,
    `rolled_back` or `no_challenger`."""

    outcome: Literal["promoted", "not_blessed", "not_approved", "refused", "rolled_back", "no_challenger"]
    reasons: list[str] = Field(default_factory=list)
    shadow: Shadow | None = None
    previous: str | None = None


class Estimate(BaseModel):
    """The champion's primary metric on an unlabelled batch, estimated from its probabilities (CBPE).

    Informative only: it can raise `estimated_drop`, never a retrain or a promotion.
    """

    metric: str
    value: float | None = None
    method: str = "cbpe"
    version: str  # the champion version whose probabilities were read (the one that scored)
    rows: int
    reference: float | None = None  # that version's holdout metric at blessing
    drop: float | None = None  # how much worse than `reference` (positive: worse)
    max_drop: float | None = None


class DecisionRecord(BaseModel):
    domain: str
    batch_id: str
    # `DomainSpec.content_hash()` of the spec the batch was gated under: which contract decided it.
    spec_hash: str | None = None
    validation: Validation = Field(default_factory=Validation)
    quarantined: bool = False
    drift: Drift = Field(default_factory=Drift)
    performance: Performance | None = None
    retrain: Retrain = Field(default_factory=Retrain)
    champion_before: ModelVersion | None = None  # what the challenger was judged against
    challenger: Challenger | None = None
    approval: Approval | None = None  # only where the spec requires a person's sign-off
    promotion: Promotion | None = None
    promoted: bool = False
    champion: ModelVersion | None = None
    baselines: Baselines | None = None
    scores: str | None = None
    estimate: Estimate | None = None  # unlabelled batches: the expected metric before labels arrive
    score_summary: ScoreSummary | None = None
    # Steps whose work is complete; a rerun of a listed step returns without side effects.
    steps: list[Step] = Field(default_factory=list)
    finished: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)

    def done(self, step: Step) -> bool:
        return step in self.steps

    def mark(self, step: Step) -> None:
        if step not in self.steps:
            self.steps.append(step)

    def save(self) -> str:
        return storage.put_json(Keys(self.domain).decision(self.batch_id), self.model_dump(mode="json"))


def load(domain: str, batch_id: str) -> DecisionRecord:
    """The batch's record so far, or a fresh one when no step has written it yet."""
    from continuum.batches import check_batch_id

    key = Keys(domain).decision(check_batch_id(batch_id))
    if storage.exists(key):
        return DecisionRecord.model_validate(storage.get_json(key))
    return DecisionRecord(domain=domain, batch_id=batch_id)


def latest(domain: str, limit: int = 10) -> list[DecisionRecord]:
    """The domain's most recent decision records, newest first."""
    return [record for _, record in latest_saved(domain, limit)]


def latest_saved(domain: str, limit: int = 10) -> list[tuple[datetime, DecisionRecord]]:
    """The domain's most recent decision records with the time each was last saved, newest first."""
    objects = [o for o in storage.list_objects(f"batches/{domain}/") if o["Key"].endswith("/decision.json")]
    objects.sort(key=lambda o: o["LastModified"], reverse=True)
    return [(o["LastModified"], DecisionRecord.model_validate(storage.get_json(o["Key"]))) for o in objects[:limit]]
