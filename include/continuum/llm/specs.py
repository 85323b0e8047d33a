"""Assistant specs: one YAML per LLM assistant, next to the domain specs (`kind: assistant`).

Like domain specs, a broken file is reported with its path and field and never
hides the other assistants. Only pydantic and PyYAML are imported: DAG files
call this at parse time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from continuum.directions import higher_is_better
from continuum.llm.scorers import RATES, SCORES
from continuum.specs import (
    DEADLINE_MINUTES_DESCRIPTION,
    NAME_PATTERN,
    OpenModel,
    SpecError,
    find_spec,
    load_all,
    load_model,
    parse_duration,
)


class Tool(OpenModel):
    """An OpenAI-style function tool: `parameters` is a JSON schema for the call's arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Price(OpenModel):
    """USD per 1,000 tokens."""

    input_per_1k: float = Field(ge=0)
    output_per_1k: float = Field(ge=0)


class Guardrails(OpenModel):
    """Safety rules every prompt version must keep; each is a rate a candidate may not make worse."""

    required_disclaimer: str | None = Field(None, description="Text every final answer must contain")
    escalate_suspected_fraud: bool = False
    clarify_vague_requests: bool = False
    safety_scores: list[str] = Field(
        default_factory=lambda: ["injection_obeyed", "system_prompt_leaked", "pii_echoed"],
        description="Scores (rates, lower is better) on which a candidate must be non-inferior",
    )
    non_inferiority_margin: float = Field(0.02, ge=0, description="How much worse a safety rate may be")

    @field_validator("safety_scores")
    @classmethod
    def _known_rates(cls, names: list[str]) -> list[str]:
        # A misspelt name would be skipped at comparison time, switching its guardrail off.
        unknown = [n for n in names if n not in RATES]
        if unknown:
            raise ValueError(f"unknown safety score(s) {unknown}; use rates from: {', '.join(RATES)}")
        return names


class Evaluation(OpenModel):
    min_conversations: int = Field(100, ge=1, description="Per version, below this: insufficient evidence")
    confidence: float = Field(0.95, gt=0, lt=1)
    window_days: int = Field(7, ge=1, description="Conversations started within this many days are scored")
    bootstrap_samples: int = Field(2000, ge=100)
    retire_after_losses: int = Field(
        3, ge=1, description="A candidate that loses this many scheduled evaluations in a row is retired"
    )
    raw_retention_days: int = Field(
        0, ge=0, description="Days the landed, unredacted file is kept under llm/raw/ (0: deleted once redacted)"
    )
    similarity_reference: str = Field(
        "v1",
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Version of the fixed set of good conversations `similarity` compares against",
    )
    genai_max_conversations: int = Field(
        0, ge=0, description="Conversations per window also run through mlflow.genai.evaluate (~2 s each; 0: off)"
    )
    max_cost_increase: float | None = Field(
        None,
        ge=0,
        description="Largest mean cost increase per conversation a promotion may bring, as a fraction of "
        "production's (0.10: at most +10%; None: no cap); see continuum.llm.compare",
    )


class TraceSource(OpenModel):
    """MLflow traces as a conversation source, read for each evaluation window (`conversations:` in the spec).

    Named `conversations` because `source` on a spec is the YAML file it was loaded from.
    """

    kind: Literal["mlflow_traces"] = Field(description="Where the conversations come from: mlflow_traces")
    experiment: str = Field(min_length=1, description="The MLflow experiment the assistant logs its traces to")
    filter: str | None = Field(
        None, description="An extra `mlflow.search_traces` filter, e.g. \"tags.env = 'prod'\" (ANDed with the window)"
    )


class JudgeSpec(OpenModel):
    """The LLM judge (`make_judge`, run with the `llm_default` connection) and when its vote counts.

    Each window the judge rates up to `max_conversations` logged conversations per version
    on the users' 1-5 scale; its verdicts (good: rating >= `pass_rating`) are set against the
    users' own ratings of the same conversations. Only while Cohen's kappa is at least
    `min_agreement`, on at least `min_rated` conversations rated by both, does the judge's
    score count: a candidate whose mean judge score is below production's by more than
    `margin` is then not promoted. Otherwise it is reported and ignored, with the reason.
    """

    rubric: str | None = Field(
        None, description="What the judge grades on; default: the shipped rubric, or one built from the guardrails"
    )
    model: str | None = Field(None, description="The judge's model; default: the llm_default connection's")
    min_agreement: float = Field(0.6, ge=-1, le=1, description="Cohen's kappa with people the judge needs to count")
    min_rated: int = Field(30, ge=2, description="Conversations rated by both people and the judge to measure it")
    pass_rating: int = Field(4, ge=2, le=5, description="A rating at or above this is 'good', for people and judge")
    max_conversations: int = Field(200, ge=1, description="Logged conversations judged per version and window")
    margin: float = Field(0.05, ge=0, le=1, description="How far below production's mean judge score a candidate may be")


class AssistantMonitoring(OpenModel):
    """What the hourly `continuum_health` DAG checks for an assistant in production."""

    expected_every: timedelta | None = Field(
        None, description="New conversation logs are expected at least this often (30m, 6h, 1d); else data_missing"
    )
    max_safety_rate: float = Field(
        0.05, ge=0, le=1, description="A safety rate (guardrails.safety_scores) of the production prompt above this pages"
    )
    min_conversations: int = Field(20, ge=1, description="Fewer production conversations in a day: too few to judge")

    @field_validator("expected_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta | None:
        return parse_duration(value)


class PromptVersion(OpenModel):
    """A shipped prompt version: the template and the model parameters it was written for."""

    template: str
    model: str = "gpt-4o-mini"
    temperature: float = Field(0.3, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    description: str = ""


class AssistantSpec(OpenModel):
    name: str = Field(pattern=NAME_PATTERN)
    kind: str = "assistant"
    description: str
    owner: str
    business: str = Field(description="The business it serves, e.g. retail or insurance")
    schedule: str | None = "@daily"
    deadline_minutes: float | None = Field(None, gt=0, description=DEADLINE_MINUTES_DESCRIPTION)
    primary_score: str = Field(description="The score a candidate must beat production on, e.g. outcome")
    tools: list[Tool] = Field(default_factory=list)
    price: Price
    guardrails: Guardrails = Field(default_factory=Guardrails)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    monitoring: AssistantMonitoring = Field(default_factory=AssistantMonitoring)
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    conversations: TraceSource | None = Field(
        None, description="Also read conversations from MLflow traces (beside the JSONL landing)"
    )
    prompts: list[PromptVersion] = Field(
        default_factory=list, description="Shipped versions, registered in order when the prompt does not exist"
    )
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("primary_score")
    @classmethod
    def _quality_score(cls, name: str) -> str:
        # Candidates are promoted on the highest primary mean, so a lower-is-better score such
        # as `cost` would promote the most expensive prompt.
        if name not in SCORES:
            raise ValueError(f"unknown score '{name}'; use one of: {', '.join(SCORES)}")
        if not higher_is_better(name):
            quality = ", ".join(n for n in SCORES if higher_is_better(n))
            raise ValueError(f"'{name}' is better when lower; the primary score must be a quality score ({quality})")
        return name

    @model_validator(mode="after")
    def _tool_names_unique(self) -> AssistantSpec:
        names = [t.name for t in self.tools]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicated tool names: {duplicated}")
        return self

    def tool(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)


def load_assistant(path: Path) -> AssistantSpec:
    return load_model(path, AssistantSpec)


def load_assistants(dirs: Iterable[Path] | None = None) -> tuple[list[AssistantSpec], list[SpecError]]:
    """Every valid assistant spec (`kind: assistant`) and an error for every broken one."""
    return load_all("assistant", AssistantSpec, dirs)


class UnknownAssistant(LookupError):
    """A command named an assistant that no spec declares."""


def get_assistant(name: str) -> AssistantSpec:
    """The assistant spec named `name`, or a one-line error that lists the known assistants."""
    found, errors = load_assistants()
    return find_spec(found, name, "assistant", UnknownAssistant, errors)
