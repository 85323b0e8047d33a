"""Domain specs: one YAML file declares one business domain and its model.

A spec is the user's main extension point, so loading it must never take the
other domains down with it: `load_domains` returns the good specs and a list of
`SpecError`s (file and field named) instead of raising on the first bad file.
Only pydantic and PyYAML are imported here, because the DAG files call this at
parse time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[a-z0-9_]+$"
BUILTIN_DOMAINS_DIR = Path(__file__).resolve().parent.parent / "domains"
DOMAINS_PATH_ENV = "CONTINUUM_DOMAINS_PATH"
ESTIMATOR_PACKAGES_ENV = "CONTINUUM_ESTIMATOR_PACKAGES"
IMPORT_ESTIMATORS = "import_estimators"  # validation context: also import and type-check estimators
# Packages whose classes a spec may name as an estimator. A spec is data, and a dotted path
# is an import: without a fence, `subprocess.Popen` with `shell: true` would run at training.
DEFAULT_ESTIMATOR_PACKAGES = ("sklearn", "continuum.baselines")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")

Spec = TypeVar("Spec", bound=BaseModel)
ColumnType = Literal["int", "float", "category", "bool", "string", "datetime"]


class OpenModel(BaseModel):
    """Spec sections accept keys of their own ("add keys freely") and keep them."""

    model_config = ConfigDict(extra="allow")


class EstimatorError(ValueError):
    """A dotted estimator path that is not an allowed scikit-learn-compatible class."""


def estimator_packages() -> tuple[str, ...]:
    """Packages a spec may take estimators from: scikit-learn, Continuum's baselines, and
    the comma-separated packages in CONTINUUM_ESTIMATOR_PACKAGES (e.g. `xgboost,lightgbm`)."""
    extra = [p.strip() for p in os.environ.get(ESTIMATOR_PACKAGES_ENV, "").split(",") if p.strip()]
    bad = [p for p in extra if not re.match(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$", p)]
    if bad:
        raise EstimatorError(f"{ESTIMATOR_PACKAGES_ENV} has {bad}, which are not package names; list packages like xgboost,lightgbm")
    return (*DEFAULT_ESTIMATOR_PACKAGES, *extra)


def check_estimator_path(path: str) -> str:
    """`path` if it is a dotted class path inside an allowed package; checked without importing."""
    if not _DOTTED.match(path):
        raise EstimatorError(f"'{path}' is not a dotted class path like sklearn.linear_model.LogisticRegression")
    module = path.rpartition(".")[0]
    packages = estimator_packages()
    if not any(module == p or module.startswith(p + ".") for p in packages):
        raise EstimatorError(
            f"'{path}' is outside the allowed estimator packages ({', '.join(packages)}); name a scikit-learn"
            f" estimator, or add its package to {ESTIMATOR_PACKAGES_ENV}"
        )
    return path


def resolve_estimator(path: str) -> type:
    """The estimator class at `path`: the package is checked first, then the module is imported,
    then the class must subclass scikit-learn's BaseEstimator."""
    import importlib

    from sklearn.base import BaseEstimator

    module_name, _, class_name = check_estimator_path(path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise EstimatorError(f"'{path}' cannot be imported ({exc})") from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise EstimatorError(f"'{path}' is not a scikit-learn estimator (a subclass of sklearn.base.BaseEstimator)")
    return cls


Severity = Literal["error", "warn"]
# Checks of the data contract, and what a failure does unless the spec says otherwise: `error`
# quarantines the batch, `warn` is recorded and the batch goes on. Two identical rows among
# thousands are ordinary in real data (a retail basket bought twice), so they only warn.
COLUMN_CHECKS = ("type", "not_null", "range", "allowed", "unique")
TABLE_CHECKS = ("schema", "duplicated_rows")
DEFAULT_SEVERITY: dict[str, Severity] = {name: "error" for name in COLUMN_CHECKS + TABLE_CHECKS} | {
    "duplicated_rows": "warn"
}


class CheckSetting(BaseModel):
    """How strict one contract check is: its severity and GX's `mostly` (share of rows that must pass)."""

    model_config = ConfigDict(extra="forbid")  # a typo such as `sevrity` must not pass silently

    severity: Severity | None = None
    mostly: float | None = Field(None, gt=0, le=1)


class Check(BaseModel):
    """A check's setting with the defaults filled in."""

    name: str
    severity: Severity
    mostly: float = 1.0


def resolve_check(name: str, settings: dict[str, CheckSetting]) -> Check:
    setting = settings.get(name) or CheckSetting()
    return Check(
        name=name,
        severity=setting.severity or DEFAULT_SEVERITY[name],
        mostly=setting.mostly if setting.mostly is not None else 1.0,
    )


class Column(OpenModel):
    name: str
    type: ColumnType
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    nullable: bool = False
    feature: bool = Field(True, description="False for ids and keys: validated, never a model input")
    protected: bool = Field(
        False, description="An attribute the model must not use; kept for fairness measurement"
    )
    checks: dict[Literal["type", "not_null", "range", "allowed", "unique"], CheckSetting] = Field(
        default_factory=dict, description="Severity and `mostly` of this column's checks"
    )

    @model_validator(mode="after")
    def _bounds_fit_type(self) -> Column:
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min/max only apply to int and float columns, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        unused = {
            "type": self.type not in ("int", "float", "bool", "datetime"),
            "not_null": self.nullable,
            "range": self.min is None and self.max is None,
            "allowed": self.allowed is None,
        }
        idle = [name for name in self.checks if unused.get(name)]
        if idle:
            raise ValueError(f"checks {idle} configure a check this column does not have; remove them")
        return self

    def check(self, name: str) -> Check:
        return resolve_check(name, self.checks)


def _label_type(label: Any) -> ColumnType:
    """The column type of a target that is not declared, from its positive label."""
    if isinstance(label, bool):
        return "bool"
    if isinstance(label, int):
        return "int"
    if isinstance(label, float):
        return "float"
    return "string"


class DataContract(OpenModel):
    format: Literal["csv", "parquet"] = "csv"
    target: str
    positive_label: Any = 1
    id_column: str | None = None
    columns: list[Column] = Field(min_length=1)
    checks: dict[Literal["schema", "duplicated_rows"], CheckSetting] = Field(
        default_factory=dict, description="Severity and `mostly` of the table-level checks"
    )
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
        # The target and the id may be left out of `columns`: they are then added here, the
        # target typed by its positive label and the id as text, and checked like any column.
        if self.target not in names:
            self.columns.append(Column(name=self.target, type=_label_type(self.positive_label), feature=False))
        if self.id_column is not None and self.id_column not in names:
            self.columns.append(Column(name=self.id_column, type="string", feature=False))
        misplaced = [c.name for c in self.columns if "unique" in c.checks and c.name != self.id_column]
        if misplaced:
            raise ValueError(f"checks.unique applies to the id_column only, not {misplaced}")
        if self.checks.get("schema") and self.checks["schema"].mostly is not None:
            raise ValueError("checks.schema takes no 'mostly': a column set matches or it does not")
        return self

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def check(self, name: str) -> Check:
        return resolve_check(name, self.checks)

    @property
    def feature_columns(self) -> list[Column]:
        """Columns the model learns from: not the label, the id, keys (`feature: false`) or protected ones."""
        return [
            c
            for c in self.columns
            if c.name not in (self.target, self.id_column) and c.feature and not c.protected
        ]

    @property
    def protected_columns(self) -> list[Column]:
        """Attributes kept out of the model and measured for fairness."""
        return [c for c in self.columns if c.protected]


class Search(BaseModel):
    """Tuning within a budget: successive halving over `space` on the training window only.

    `halving` samples `budget` candidates from the lists (HalvingRandomSearchCV); `halving_grid`
    tries the whole grid (HalvingGridSearchCV), which must then have at most `budget` points.
    """

    model_config = ConfigDict(extra="forbid")  # a typo such as `budjet` must not pass silently

    space: dict[str, list[Any]] = Field(min_length=1, description="estimator parameter -> values to try")
    budget: int = Field(ge=1, description="candidates the search may try")
    method: Literal["halving", "halving_grid"] = "halving"
    cv: int = Field(3, ge=2, description="folds of the training window")

    @model_validator(mode="after")
    def _space_fits_budget(self) -> Search:
        empty = [name for name, values in self.space.items() if not values]
        if empty:
            raise ValueError(f"space.{empty[0]} lists no values; give at least one")
        if "random_state" in self.space:
            raise ValueError("space.random_state cannot be searched: it comes from training.seed")
        if self.method == "halving_grid":
            points = math.prod(len(values) for values in self.space.values())
            if points > self.budget:
                raise ValueError(
                    f"the grid has {points} points but budget is {self.budget}; raise budget or use method: halving"
                )
        return self


class ModelSpec(OpenModel):
    estimator: str = "sklearn.ensemble.HistGradientBoostingClassifier"
    params: dict[str, Any] = Field(default_factory=dict)
    search: Search | None = Field(None, description="Tune these params within a budget before training")

    @field_validator("estimator")
    @classmethod
    def _allowed_path(cls, value: str, info: ValidationInfo) -> str:
        # The package is always checked, without importing. The type (a BaseEstimator) needs the
        # import, which only happens once the package passed and when the loader asks for it
        # (`import_estimators`): the CLI and every task do; DAG files, parsed every 30 s, do not
        # (no heavy import at parse time), and training resolves the class again in any case.
        try:
            check_estimator_path(value)
            if (info.context or {}).get(IMPORT_ESTIMATORS):
                resolve_estimator(value)
        except EstimatorError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("search")
    @classmethod
    def _space_names_estimator_params(cls, search: Search | None, info: ValidationInfo) -> Search | None:
        """Every searched name is a parameter of the estimator (its `get_params()`).

        This imports the estimator, at parse time too, but only for a spec that declares a
        search: a misspelt parameter must fail at load, not after an hour of tuning."""
        if search is None or "estimator" not in info.data:
            return search
        try:
            known = set(resolve_estimator(info.data["estimator"])().get_params(deep=False))
        except (EstimatorError, TypeError) as exc:
            raise ValueError(f"cannot check the search space against the estimator ({exc})") from None
        unknown = [name for name in search.space if name not in known]
        if unknown:
            raise ValueError(
                f"space.{unknown[0]} is not a parameter of {info.data['estimator']}; its parameters: {', '.join(sorted(known))}"
            )
        return search


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> timedelta | None:
    """'30m', '6h', '1d', '2w' (or a timedelta, or null) as a timedelta; anything else is a spec error."""
    if value is None or isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value).strip().lower())
    if not match:
        raise ValueError(f"'{value}' is not a duration; write a number and a unit: 30m, 6h, 1d or 2w")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: float(match.group(1))})


class Monitoring(OpenModel):
    primary_metric: str = "accuracy"
    floor: float = 0.85
    drift_share: float = Field(0.5, gt=0, le=1)
    metric_params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the primary metric, e.g. {precision: 0.5}"
    )
    expected_every: timedelta | None = Field(
        None, description="A new batch is expected at least this often (30m, 6h, 1d, 2w); else data_missing"
    )
    max_realised_gap: float | None = Field(
        0.05,
        ge=0,
        description="Largest tolerated shortfall of the champion's realised metric (late labels) against its "
        "holdout metric at blessing; larger raises realised_gap; null turns the alert off",
    )
    max_estimated_drop: float | None = Field(
        0.05,
        ge=0,
        description="Largest tolerated shortfall of the champion's estimated metric on an unlabelled batch "
        "(CBPE) against its holdout metric; larger raises estimated_drop (a warning; never retrains); null: off",
    )

    @field_validator("expected_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta | None:
        return parse_duration(value)


class Training(OpenModel):
    """How the challenger's data is chosen: the champion's window plus the new batch."""

    window_batches: int = Field(10, ge=1, description="Most recent validated batches kept in the window")
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 0


# Fairness measures a `blessing.fairness` gate may bound, per protected column, over its groups
# (continuum.fairness computes them with fairlearn). `*_ratio` is the smallest group's value over
# the largest's (1 is parity), `*_difference` the largest minus the smallest (0 is parity).
FAIRNESS_METRICS = tuple(
    f"{measure}_{kind}"
    for measure in ("demographic_parity", "equalized_odds", "equal_opportunity", "primary_metric", "mean_risk_factor")
    for kind in ("ratio", "difference")
)


class FairnessGate(BaseModel):
    """One bound on a fairness measure: `{metric: demographic_parity_ratio, min: 0.8}`."""

    model_config = ConfigDict(extra="forbid")  # a typo such as `mni` must not pass silently

    metric: str = Field(description=f"one of {', '.join(FAIRNESS_METRICS)}")
    min: float | None = None
    max: float | None = None
    column: str | None = Field(None, description="One protected column; by default every protected column")
    min_group_rows: int = Field(30, ge=1, description="Smaller groups are shown in the card but not judged")

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FAIRNESS_METRICS:
            raise ValueError(f"unknown fairness metric '{value}'; use one of {', '.join(FAIRNESS_METRICS)}")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> FairnessGate:
        if self.min is None and self.max is None:
            raise ValueError(f"fairness gate {self.metric} needs min or max (or both)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Blessing(OpenModel):
    """When a challenger may replace the champion (TFX Evaluator's value and change thresholds)."""

    min_value: float | None = Field(None, description="Value threshold; defaults to monitoring.floor")
    max_degradation: float = Field(
        0.01, ge=0, description="Change threshold: how much worse than the champion the challenger may be"
    )
    segment_column: str | None = Field(None, description="Column whose every segment must clear the floor")
    min_segment_rows: int = Field(30, ge=1, description="Smaller segments are too noisy to judge")
    alert_after_rejections: int = Field(
        3, ge=1, description="Challengers rejected in a row before challenger_rejected_repeatedly is raised"
    )
    min_gain_over_baseline: float | None = Field(
        0.0,
        description="How much better than the best simple model (class prior, logistic regression) the "
        "challenger's primary metric must be on the same holdout; 0 = not worse; null measures and records "
        "the baselines without judging by them",
    )
    max_score_shift: float | None = Field(
        0.25,
        ge=0,
        le=1,
        description="Shadow check before promotion: the largest mean absolute change of the positive-class "
        "probability, challenger vs champion on the same batch rows; null turns the check off",
    )
    fairness: list[FairnessGate] = Field(
        default_factory=list,
        description="Bounds on fairness measures over the groups of the protected columns, on the holdout",
    )
    approval: Literal["none", "required"] = Field(
        "none",
        description="required: a blessed challenger waits for a person to approve it (Airflow's "
        "ApprovalOperator, or `continuum approve`) before champion moves; none: promotion is unattended",
    )
    approval_timeout_hours: float = Field(
        72, gt=0, description="Without an answer in this time the challenger is rejected and the champion stays"
    )


class Scoring(OpenModel):
    """What batch scoring writes: probabilities, premiums, fraud flags or top-k recommendations."""

    kind: Literal["probability", "premium", "fraud", "recommendations"] = "probability"
    reason_codes: int | None = Field(
        None,
        ge=0,
        le=10,
        description="Reason codes written next to each score (reason_1..N); default 3 for premium and fraud "
        "(decisions a customer or regulator may ask about), 0 otherwise",
    )

    @model_validator(mode="after")
    def _reasons_fit_kind(self) -> Scoring:
        if self.kind == "recommendations" and self.reason_codes:
            raise ValueError("reason_codes apply to one score per row; recommendations rank items per user")
        return self

    @property
    def reasons(self) -> int:
        """How many reason codes scoring writes per row."""
        if self.reason_codes is not None:
            return self.reason_codes
        return 3 if self.kind in ("premium", "fraud") else 0

    @property
    def ranking(self) -> tuple[int, str, str]:
        """(k, user column, item column) of a recommendations spec: `scoring.k`, `user_column`, `item_column`."""
        extra = dict(self.model_extra or {})
        return int(extra.get("k", 10)), extra.get("user_column", "user_id"), extra.get("item_column", "item_id")


DEADLINE_MINUTES_DESCRIPTION = (
    "Minutes after a run is queued before deadline_missed pages the owner; "
    "unset: sized from the runtime of recent successful runs (continuum.deadlines)"
)


class DomainSpec(OpenModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str
    owner: str
    schedule: str | None = "@weekly"
    retrain_on_schedule: bool = Field(
        False,
        description="When the champion is older than `schedule` allows, continuum_health asks <domain>_decide "
        "to retrain it (on the newest labelled batch); model_stale is raised either way",
    )
    deadline_minutes: float | None = Field(None, gt=0, description=DEADLINE_MINUTES_DESCRIPTION)
    data: DataContract
    model: ModelSpec = Field(default_factory=ModelSpec)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    training: Training = Field(default_factory=Training)
    blessing: Blessing = Field(default_factory=Blessing)
    scoring: Scoring = Field(default_factory=Scoring)
    baseline: ModelSpec | None = Field(
        None, description="A rules model registered as the first champion, so the ML model must beat it"
    )
    limitations: list[str] = Field(
        default_factory=list, description="Known limitations of the model, printed in every model card"
    )
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _segment_column_is_declared(self) -> DomainSpec:
        column = self.blessing.segment_column
        if column is not None and column not in [c.name for c in self.data.columns]:
            raise ValueError(f"blessing.segment_column '{column}' is not one of the declared columns")
        protected = [c.name for c in self.data.protected_columns]
        for index, gate in enumerate(self.blessing.fairness):
            where = f"blessing.fairness.{index}"
            if not protected:
                raise ValueError(f"{where} needs a protected column to measure; mark one with `protected: true`")
            if gate.column is not None and gate.column not in protected:
                raise ValueError(f"{where}.column '{gate.column}' is not a protected column ({', '.join(protected)})")
            if gate.metric.startswith("mean_risk_factor") and self.scoring.kind != "premium":
                raise ValueError(f"{where}.metric {gate.metric} needs scoring.kind premium (a risk factor to compare)")
        return self

    @model_validator(mode="after")
    def _random_state_is_the_seed(self) -> DomainSpec:
        # One source for the seed: training.seed splits the holdout and seeds the estimator, so a
        # retrain on the same window reproduces its metrics (training.instantiate sets it).
        given = self.model.params.get("random_state")
        if given is not None and given != self.training.seed:
            raise ValueError(
                f"model.params.random_state ({given}) differs from training.seed ({self.training.seed}); the"
                " estimator's random_state comes from training.seed: remove it from model.params or set training.seed"
            )
        return self

    @property
    def bless_floor(self) -> float:
        return self.blessing.min_value if self.blessing.min_value is not None else self.monitoring.floor

    def content_hash(self) -> str:
        """sha256 of the spec's content: the same for the same meaning, whatever the YAML layout.

        Key order, comments, quoting and the file's location do not count; defaults do, so
        a spec that leaves a default implicit hashes like one that writes it out.
        """
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


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


# libyaml's C parser where PyYAML was built with it: at 300 specs the pure-Python parser was
# most of a DAG file's parse time (cProfile, 33 generated domains: 5.6 s of 8.7 s in yaml.safe_load).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_read_cache: dict[Path, tuple[tuple[int, int], Any]] = {}


def read_yaml(path: Path) -> Any:
    """A spec file's YAML document, parsed once per version of the file (mtime and size).

    Every DAG file and every task process lists all specs; before this each file was parsed
    two or three times per listing (its kind, its model, its name). Raises OSError or
    yaml.YAMLError like `yaml.safe_load(path.read_text())`. The document is shared: do not mutate it.
    """
    stat = path.stat()
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _read_cache.get(path)
    if cached is not None and cached[0] == version:
        return cached[1]
    document = yaml.load(path.read_text(), Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)
    _read_cache[path] = (version, document)
    return document


def _kind(path: Path) -> str | None:
    """A file's `kind` (domain when absent); None when it cannot be read, so the domain loader reports it."""
    try:
        raw = read_yaml(path)
    except (OSError, yaml.YAMLError):
        return None
    return raw.get("kind", "domain") if isinstance(raw, dict) else None


def load_model(path: Path, model: type[Spec], import_estimators: bool = False) -> Spec:
    """Load one spec file into `model`; raises SpecLoadError naming the file and the field.

    With `import_estimators`, an estimator in an allowed package is also imported and must be
    a scikit-learn `BaseEstimator` (not at DAG parse time: see `ModelSpec`).
    """
    try:
        raw = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise SpecLoadError(SpecError(path, "", f"cannot be read as YAML ({exc})")) from exc
    if not isinstance(raw, dict):
        raise SpecLoadError(SpecError(path, "", "must be a YAML mapping with name, description, owner, ..."))
    try:
        return model.model_validate({**raw, "source": path}, context={IMPORT_ESTIMATORS: import_estimators})
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


def load_all(
    kind: str, model: type[Spec], dirs: Iterable[Path] | None = None, import_estimators: bool = False
) -> tuple[list[Spec], list[SpecError]]:
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
            spec = load_model(path, model, import_estimators)
        except SpecLoadError as exc:
            errors.append(exc.error)
            continue
        if spec.name in found:
            errors.append(SpecError(path, "name", f"'{spec.name}' is already used by {found[spec.name].source}"))
            continue
        found[spec.name] = spec
    return list(found.values()), errors


def load_domains(
    dirs: Iterable[Path] | None = None, import_estimators: bool = False
) -> tuple[list[DomainSpec], list[SpecError]]:
    """Every valid domain spec, and an error for every file that is not one (see `load_model`)."""
    return load_all("domain", DomainSpec, dirs, import_estimators)


def _declared_name(path: Path) -> str | None:
    try:
        raw = read_yaml(path)
    except (OSError, yaml.YAMLError):
        return None
    return raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else None


def find_spec(
    specs: list[Spec], name: str, what: str, error: type[LookupError], errors: Iterable[SpecError] = ()
) -> Spec:
    """The spec named `name`; else the load error of a broken file for `name` (its file and field:
    "unknown" would send the user to write a file that exists), else a one-line `error` that lists
    the known ones and says what to add."""
    for spec in specs:
        if spec.name == name:
            return spec
    for problem in errors:
        if name in (problem.path.stem, _declared_name(problem.path)):
            raise SpecLoadError(problem)
    known = ", ".join(sorted(s.name for s in specs)) or "none"
    raise error(f"unknown {what} '{name}' (known: {known}); add include/domains/{name}.yaml")


def get_domain(name: str) -> DomainSpec:
    """The domain spec named `name`, or a one-line error that lists the known domains.

    Run time (CLI, tasks), not parse time: estimators are imported and type-checked here.
    """
    found, errors = load_domains(import_estimators=True)
    return find_spec(found, name, "domain", UnknownDomain, errors)
