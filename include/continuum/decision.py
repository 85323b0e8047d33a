"""The decision record: one JSON document per batch that says what happened to it and why.

Each step of the loop fills in its part and saves the record beside the batch
(`batches/<domain>/<batch_id>/decision.json`); the CLI prints it as its last line.
One type for the whole loop, so every consumer reads the same keys.
"""

from __future__ import annotations

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
    # Notes for the reviewer that do not refuse: input columns with permutation importance <= 0.
    flags: list[str] = Field(default_factory=list)


class Shadow(BaseModel):
    """The registered challenger, loaded as scoring loads it, scoring this batch before `champion` moves."""

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    score_shift: float | None = None
    max_score_shift: float | None = None


class Promotion(BaseModel):
    """What the promote step did and why: `promoted`, `not_blessed`, `refused`, `rolled_back` or `no_challenger`."""

    outcome: Literal["promoted", "not_blessed", "refused", "rolled_back", "no_challenger"]
    reasons: list[str] = Field(default_factory=list)
    shadow: Shadow | None = None
    previous: str | None = None


class DecisionRecord(BaseModel):
    domain: str
    batch_id: str
    validation: Validation = Field(default_factory=Validation)
    quarantined: bool = False
    drift: Drift = Field(default_factory=Drift)
    performance: Performance | None = None
    retrain: Retrain = Field(default_factory=Retrain)
    champion_before: ModelVersion | None = None  # what the challenger was judged against
    challenger: Challenger | None = None
    promotion: Promotion | None = None
    promoted: bool = False
    champion: ModelVersion | None = None
    scores: str | None = None
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
    objects = [o for o in storage.list_objects(f"batches/{domain}/") if o["Key"].endswith("/decision.json")]
    objects.sort(key=lambda o: o["LastModified"], reverse=True)
    return [DecisionRecord.model_validate(storage.get_json(o["Key"])) for o in objects[:limit]]
