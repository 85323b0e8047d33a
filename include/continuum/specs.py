"""Domain specs: one YAML file declares one business domain and its model.

A spec is the user's main extension point, so loading it must never take the
other domains down with it: `load_domains` returns the good specs and a list of
`SpecError`s (file and field named) instead of raising on the first bad file.
Only pydantic and PyYAML are imported here, because the DAG files call this at
parse time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME_PATTERN = r"^[a-z0-9_]+$"
BUILTIN_DOMAINS_DIR = Path(__file__).resolve().parent.parent / "domains"
DOMAINS_PATH_ENV = "CONTINUUM_DOMAINS_PATH"

Spec = TypeVar("Spec", bound=BaseModel)
ColumnType = Literal["int", "float", "category", "bool", "string", "datetime"]


class _Open(BaseModel):
    """Spec sections accept keys of their own ("add keys freely") and keep them."""

    model_config = ConfigDict(extra="allow")


class Column(_Open):
    name: str
    type: ColumnType
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _bounds_fit_type(self) -> Column:
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min/max only apply to int and float columns, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class DataContract(_Open):
    format: Literal["csv", "parquet"] = "csv"
    target: str
    positive_label: Any = 1
    id_column: str | None = None
    columns: list[Column] = Field(min_length=1)
    expectations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Extra GX expectations: {type: expect_..., kwargs: {...}}",
    )

    @model_validator(mode="after")
    def _names_are_consistent(self) -> DataContract:
        names = [c.name for c in self.columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicated column names: {duplicated}")
        if self.target not in names:
            raise ValueError(f"target '{self.target}' is not one of the declared columns")
        if self.id_column is not None and self.id_column not in names:
            raise ValueError(f"id_column '{self.id_column}' is not one of the declared columns")
        return self

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def feature_columns(self) -> list[Column]:
        """Columns the model learns from: everything but the label and the id."""
        return [c for c in self.columns if c.name not in (self.target, self.id_column)]


class ModelSpec(_Open):
    estimator: str = "sklearn.ensemble.HistGradientBoostingClassifier"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("estimator")
    @classmethod
    def _dotted_path(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$", value):
            raise ValueError(f"'{value}' is not a dotted import path like sklearn.linear_model.LogisticRegression")
        return value


class Monitoring(_Open):
    primary_metric: str = "accuracy"
    floor: float = 0.85
    drift_share: float = Field(0.5, gt=0, le=1)
    metric_params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the primary metric, e.g. {precision: 0.5}"
    )


class Training(_Open):
    """How the challenger's data is chosen: the champion's window plus the new batch."""

    window_batches: int = Field(10, ge=1, description="Most recent validated batches kept in the window")
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 0


class Blessing(_Open):
    """When a challenger may replace the champion (TFX Evaluator's value and change thresholds)."""

    min_value: float | None = Field(None, description="Value threshold; defaults to monitoring.floor")
    max_degradation: float = Field(
        0.01, ge=0, description="Change threshold: how much worse than the champion the challenger may be"
    )
    segment_column: str | None = Field(None, description="Column whose every segment must clear the floor")
    min_segment_rows: int = Field(30, ge=1, description="Smaller segments are too noisy to judge")
    max_score_shift: float | None = Field(
        0.25,
        ge=0,
        le=1,
        description="Shadow check before promotion: the largest mean absolute change of the positive-class "
        "probability, challenger vs champion on the same batch rows; null turns the check off",
    )


class Scoring(_Open):
    """What batch scoring writes: probabilities, premiums, fraud flags or top-k recommendations."""

    kind: Literal["probability", "premium", "fraud", "recommendations"] = "probability"


class DomainSpec(_Open):
    name: str = Field(pattern=NAME_PATTERN)
    description: str
    owner: str
    schedule: str | None = "@weekly"
    data: DataContract
    model: ModelSpec = Field(default_factory=ModelSpec)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    training: Training = Field(default_factory=Training)
    blessing: Blessing = Field(default_factory=Blessing)
    scoring: Scoring = Field(default_factory=Scoring)
    baseline: ModelSpec | None = Field(
        None, description="A rules model registered as the first champion, so the ML model must beat it"
    )
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _segment_column_is_declared(self) -> DomainSpec:
        column = self.blessing.segment_column
        if column is not None and column not in [c.name for c in self.data.columns]:
            raise ValueError(f"blessing.segment_column '{column}' is not one of the declared columns")
        return self

    @property
    def bless_floor(self) -> float:
        return self.blessing.min_value if self.blessing.min_value is not None else self.monitoring.floor


@dataclass(frozen=True)
class SpecError:
    """A spec file that could not be used, with the field at fault."""

    path: Path
    field: str
    message: str

    def __str__(self) -> str:
        where = f" field '{self.field}'" if self.field else ""
        return f"{self.path}:{where} {self.message}. Fix the file, or move it out of the domains path."


def domain_dirs() -> list[Path]:
    """The built-in `include/domains` plus every directory in CONTINUUM_DOMAINS_PATH."""
    extra = [Path(p) for p in os.environ.get(DOMAINS_PATH_ENV, "").split(os.pathsep) if p.strip()]
    return [BUILTIN_DOMAINS_DIR, *extra]


def spec_files(dirs: Iterable[Path] | None = None) -> list[Path]:
    files: list[Path] = []
    for directory in dirs if dirs is not None else domain_dirs():
        if directory.is_dir():
            files += sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    return files


def _kind(path: Path) -> str | None:
    """A file's `kind` (domain when absent); None when it cannot be read, so the domain loader reports it."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return raw.get("kind", "domain") if isinstance(raw, dict) else None


def load_model(path: Path, model: type[Spec]) -> Spec:
    """Load one spec file into `model`; raises SpecLoadError naming the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecLoadError(SpecError(path, "", f"cannot be read as YAML ({exc})")) from exc
    if not isinstance(raw, dict):
        raise SpecLoadError(SpecError(path, "", "must be a YAML mapping with name, description, owner, ..."))
    try:
        return model.model_validate({**raw, "source": path})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise SpecLoadError(SpecError(path, field, first["msg"])) from exc


def load_spec(path: Path) -> DomainSpec:
    return load_model(path, DomainSpec)


class UnknownDomain(LookupError):
    """A command named a domain that no spec declares."""


class SpecLoadError(ValueError):
    def __init__(self, error: SpecError):
        super().__init__(str(error))
        self.error = error


def load_all(kind: str, model: type[Spec], dirs: Iterable[Path] | None = None) -> tuple[list[Spec], list[SpecError]]:
    """Every valid spec of one `kind`, and an error for every file of that kind that is not one.

    Names must be unique: the second file that uses a name is reported, the first kept.
    Unreadable files are reported once, as domains (their kind cannot be known).
    """
    found: dict[str, Spec] = {}
    errors: list[SpecError] = []
    for path in spec_files(dirs):
        file_kind = _kind(path)
        if file_kind != kind and not (file_kind is None and kind == "domain"):
            continue
        try:
            spec = load_model(path, model)
        except SpecLoadError as exc:
            errors.append(exc.error)
            continue
        if spec.name in found:
            errors.append(SpecError(path, "name", f"'{spec.name}' is already used by {found[spec.name].source}"))
            continue
        found[spec.name] = spec
    return list(found.values()), errors


def load_domains(dirs: Iterable[Path] | None = None) -> tuple[list[DomainSpec], list[SpecError]]:
    """Every valid domain spec, and an error for every file that is not one."""
    return load_all("domain", DomainSpec, dirs)


def find_spec(specs: list[Spec], name: str, what: str, error: type[LookupError]) -> Spec:
    """The spec named `name`, or a one-line `error` that lists the known ones and says what to add."""
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(sorted(s.name for s in specs)) or "none"
    raise error(f"unknown {what} '{name}' (known: {known}); add include/domains/{name}.yaml")


def get_domain(name: str) -> DomainSpec:
    """The domain spec named `name`, or a one-line error that lists the known domains."""
    return find_spec(load_domains()[0], name, "domain", UnknownDomain)
