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


class ModelVersion(BaseModel):
    version: str
    metrics: dict[str, float] = Field(default_factory=dict)
    run_id: str | None = None


class Challenger(ModelVersion):
    blessed: bool = False
    why_not: list[str] = Field(default_factory=list)


class DecisionRecord(BaseModel):
    domain: str
    batch_id: str
    validation: Validation = Field(default_factory=Validation)
    quarantined: bool = False
    drift: Drift = Field(default_factory=Drift)
    performance: Performance | None = None
    retrain: Retrain = Field(default_factory=Retrain)
    challenger: Challenger | None = None
    promoted: bool = False
    champion: ModelVersion | None = None
    scores: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def save(self) -> str:
        return storage.put_json(Keys(self.domain).decision(self.batch_id), self.model_dump(mode="json"))


def load(domain: str, batch_id: str) -> DecisionRecord:
    """The batch's record so far, or a fresh one when no step has written it yet."""
    key = Keys(domain).decision(batch_id)
    if storage.exists(key):
        return DecisionRecord.model_validate(storage.get_json(key))
    return DecisionRecord(domain=domain, batch_id=batch_id)


def latest(domain: str, limit: int = 10) -> list[DecisionRecord]:
    """The domain's most recent decision records, newest first."""
    objects = [o for o in storage.list_objects(f"batches/{domain}/") if o["Key"].endswith("/decision.json")]
    objects.sort(key=lambda o: o["LastModified"], reverse=True)
    return [DecisionRecord.model_validate(storage.get_json(o["Key"])) for o in objects[:limit]]
