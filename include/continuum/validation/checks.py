"""Run a domain's suite on a batch, and cast a batch that passed to the declared types.

One frame, two views (see `suite`): the text view keeps every value as written, so a
type fault is caught with its value; the typed view has numbers where the contract has
numbers, so ranges mean something. GX runs each part of the suite on its view through
an ephemeral context: nothing is written to disk and nothing is sent anywhere.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from continuum.validation.suite import TEXT, TYPED, build_suite, import_gx

if TYPE_CHECKING:
    import pandas as pd

    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)
SAMPLE_SIZE = 5
_BOOLS = {
    "true": True,
    "yes": True,
    "1": True,
    "1.0": True,
    "false": False,
    "no": False,
    "0": False,
    "0.0": False,
}


class FailedExpectation(BaseModel):
    expectation: str
    column: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] = Field(default_factory=list, description=f"up to {SAMPLE_SIZE} offending values")
    rows: list[Any] = Field(
        default_factory=list, description="row numbers (0 = first data row) of the sample"
    )
    details: dict[str, Any] | None = Field(None, description="e.g. missing and unexpected columns")
    error: str | None = Field(None, description="set when GX could not evaluate the expectation")
    severity: Literal["error", "warn"] = Field("error", description="error quarantines; warn is recorded only")

    @property
    def name(self) -> str:
        return f"{self.expectation}({self.column})" if self.column else self.expectation

    def describe(self) -> str:
        """One line for reports and alerts."""
        if self.error:
            return f"{self.name}: could not be evaluated ({self.error})"
        if self.details:
            return f"{self.name}: {', '.join(f'{k} {v}' for k, v in self.details.items() if v)}"
        if self.expectation == "expect_column_to_exist":
            return f"{self.name}: the column is missing"
        if not self.unexpected_count:
            return f"{self.name}: failed"
        where = f" at rows {self.rows}" if self.rows else ""
        values = f" e.g. {self.sample}" if any(v is not None for v in self.sample) else ""
        return f"{self.name}: {self.unexpected_count} values ({self.unexpected_percent:.3g}%){values}{where}"


class ValidationResult(BaseModel):
    suite: str
    success: bool
    row_count: int
    evaluated: int = Field(description="expectations that ran")
    skipped: list[str] = Field(default_factory=list, description="not run: their column is missing")
    failed: list[FailedExpectation] = Field(default_factory=list, description="severity error: quarantine")
    warnings: list[FailedExpectation] = Field(
        default_factory=list, description="severity warn: recorded, the batch goes on"
    )

    @property
    def reason(self) -> str | None:
        if self.success:
            return None
        return f"{len(self.failed)} expectations failed: " + "; ".join(f.name for f in self.failed)


def validate(spec: DomainSpec, frame: pd.DataFrame) -> ValidationResult:
    """Every expectation of the domain's contract, run on `frame` as read by `read_batch`."""
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    suite = build_suite(spec, labelled=spec.data.target in frame.columns)
    frame = frame.reset_index(drop=True)  # row numbers in the report are positions in the file
    views = {TEXT: text_view(frame), TYPED: typed_view(spec, frame)}
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("batch").add_dataframe_asset("frame")
    definition = asset.add_batch_definition_whole_dataframe("whole")

    failed, skipped, evaluated = [], [], 0
    for view, data in views.items():
        runnable = []
        for position, expectation in enumerate(suite.expectations):
            if expectation.meta.get("view") == view:
                expectation = _fit(expectation, data, position)
                (skipped if _missing(expectation, data) else runnable).append(expectation)
        results = _run(
            gx, definition, gx.ExpectationSuite(name=f"{suite.name}_{view}", expectations=runnable), data
        )
        evaluated += len(results)
        failed += [_failure(r) for r in results if not r.success]
    skipped = [_name(e) for e in skipped]
    warnings = [f for f in failed if f.severity == "warn"]
    failed = [f for f in failed if f.severity == "error"]

    result = ValidationResult(
        suite=suite.name,
        success=not failed,
        row_count=len(frame),
        evaluated=evaluated,
        skipped=skipped,
        failed=failed,
        warnings=warnings,
    )
    log.info(
        "validation domain=%s suite=%s rows=%d evaluated=%d failed=%d warnings=%d",
        spec.name,
        suite.name,
        result.row_count,
        evaluated,
        len(failed),
        len(warnings),
    )
    return result


def _run(gx, definition, part, data: pd.DataFrame) -> list[Any]:
    """GX results of one part of the suite on one view, in the suite's order (GX uses its own)."""
    if not part.expectations:
        return []
    batch = definition.get_batch(batch_parameters={"dataframe": data})
    outcome = batch.validate(part, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20})
    return sorted(outcome.results, key=lambda r: r.expectation_config.meta["position"])


def _columns_of(expectation) -> list[str]:
    kwargs = expectation.configuration.kwargs
    names = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    return names + list(kwargs.get("column_list") or [])


def _fit(expectation, data: pd.DataFrame, position: int):
    """A copy to run (the suite stays as built), numbered by its position in the suite.

    The duplicated-rows check looks at the declared columns that are there, so it still
    runs when one is missing."""
    update: dict[str, Any] = {"id": None, "meta": {**expectation.meta, "position": position}}
    if expectation.expectation_type == "expect_compound_columns_to_be_unique":
        present = [c for c in expectation.column_list if c in data.columns]
        if len(present) > 1:
            update["column_list"] = present
    return expectation.copy(update=update)


def _missing(expectation, data: pd.DataFrame) -> bool:
    """Column checks on an absent column are skipped: expect_column_to_exist reports the absence once."""
    if expectation.expectation_type == "expect_column_to_exist":
        return False
    return any(name not in data.columns for name in _columns_of(expectation))


def _name(expectation) -> str:
    columns = _columns_of(expectation)
    return (
        f"{expectation.expectation_type}({columns[0]})" if len(columns) == 1 else expectation.expectation_type
    )


def _failure(result) -> FailedExpectation:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    details = result.result.get("details", {}).get("mismatched") if result.result else None
    exception = _exception_message(result.exception_info or {})
    partial = (result.result or {}).get("partial_unexpected_list") or []
    rows = (result.result or {}).get("partial_unexpected_index_list") or []
    return FailedExpectation(
        expectation=config.type,
        column=kwargs.get("column"),
        kwargs=json_safe(kwargs),
        unexpected_count=(result.result or {}).get("unexpected_count"),
        unexpected_percent=(result.result or {}).get("unexpected_percent"),
        sample=_sample(partial)
        if partial
        else json_safe((details or {}).get("unexpected", []))[:SAMPLE_SIZE],
        rows=_sample(rows),
        details=json_safe(details) if details else None,
        error=exception.splitlines()[0][:200] if exception else None,
        severity=config.meta.get("severity", "error"),
    )


def _exception_message(info: dict[str, Any]) -> str | None:
    """GX puts the exception either at the top level or under the id of the metric that raised."""
    for entry in [info, *info.values()]:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "unknown error")
    return None


def _sample(values: list[Any]) -> list[Any]:
    """Distinct offending values, first seen first (GX's partial list repeats them)."""
    distinct: list[Any] = []
    for value in json_safe(values):
        if value not in distinct:
            distinct.append(value)
        if len(distinct) == SAMPLE_SIZE:
            break
    return distinct


def json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN as None, tuples (compound rows) as lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def text_view(frame: pd.DataFrame) -> pd.DataFrame:
    """Every value as text, nulls kept null: how a CSV arrives, and how parquet values are written."""
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            columns[name] = column
        else:
            columns[name] = column.astype(str).where(column.notna(), None).astype(object)
    return _consolidated(frame, columns)


def _consolidated(frame: pd.DataFrame, replaced: dict[str, Any]) -> pd.DataFrame:
    """`frame` with some columns replaced, built in one piece: GX copies and slices the frame
    for every metric, and a frame of many single-column blocks is merged again each time."""
    import pandas as pd

    return pd.DataFrame({name: replaced.get(name, frame[name]) for name in frame.columns}).copy()


def typed_view(spec: DomainSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Declared columns cast to their type; values that do not parse become null (the regexes report them)."""
    import pandas as pd

    columns = {}
    for column in spec.data.columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name]
        if column.type in ("int", "float"):
            columns[column.name] = _numbers(pd, values)
        elif column.type == "bool":
            text = values.astype(str).str.strip().str.lower()
            columns[column.name] = text.map(_BOOLS).where(values.notna(), None).astype("boolean")
        elif column.type == "datetime":
            columns[column.name] = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        else:
            columns[column.name] = text_view(frame[[column.name]])[column.name]
    return _consolidated(frame, columns)


def _numbers(pd, values):
    """float64 (numpy, not Int64: GX compares extension arrays one value at a time, 10x slower).

    Parsing all values at once is fast; only a batch with a bad value pays for pd.to_numeric."""
    try:
        return values.astype("float64")
    except (TypeError, ValueError):
        return pd.to_numeric(values, errors="coerce").astype("float64")


def conform(spec: DomainSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """A validated batch in the declared types and the spec's column order (what training reads).

    int -> int64 (Int64 when nullable, or when a tolerated check let a null or bad value through),
    float -> float64, bool -> bool (boolean likewise),
    category -> category with the allowed values as categories, string -> object,
    datetime -> datetime64[ns, UTC]. An unlabelled batch comes out without the target.
    """
    import pandas as pd

    typed = typed_view(spec, frame)
    columns = {}
    for column in spec.data.columns:
        if column.name == spec.data.target and column.name not in typed.columns:
            continue  # an unlabelled batch
        if column.name not in typed.columns:
            raise ValueError(f"column '{column.name}' is missing; conform only frames that passed validate()")
        values = typed[column.name]
        nulls = bool(values.isna().any())
        if nulls and not column.nullable and _strict(column):
            raise ValueError(
                f"column '{column.name}' has null or unparseable values; conform only frames that passed validate()"
            )
        columns[column.name] = _cast(pd, column, values, nullable=column.nullable or nulls)
    return pd.DataFrame(columns, index=frame.index).reset_index(drop=True)


def align_to_contract(spec: DomainSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """A batch validated under an older version of the contract, in the current one's columns.

    A column the spec added since is there, all null in its declared (nullable) type, so a
    training window that spans the change concatenates without turning an int column into
    floats; a column the spec no longer declares is left out. A batch validated under the
    current contract comes back unchanged.
    """
    import pandas as pd

    columns = {}
    for column in spec.data.columns:
        if column.name in frame.columns:
            columns[column.name] = frame[column.name]
        elif column.name != spec.data.target:  # an unlabelled batch stays unlabelled
            empty = pd.Series([None] * len(frame), index=frame.index, dtype=object)
            columns[column.name] = _cast(pd, column, empty, nullable=True)
    return pd.DataFrame(columns, index=frame.index)


def concat_batches(spec: DomainSpec, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Validated batches as one frame under the current contract (`align_to_contract` each).

    A column a batch predates is all null there; pandas warns that such entries will count
    when it picks the result's dtype (category today, object later for a category column).
    The training pipeline imputes and one-hot encodes both alike, so the warning is silenced.
    """
    import warnings

    import pandas as pd

    aligned = [align_to_contract(spec, frame) for frame in frames]
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The behavior of DataFrame concatenation with empty", category=FutureWarning
        )
        return pd.concat(aligned, ignore_index=True)


def _strict(column) -> bool:
    """No null can pass the contract: its type and not-null checks quarantine on the first fault.
    Otherwise (a `warn` or a `mostly` below 1) a bad value passes and becomes a null here."""
    return all(
        column.check(name).severity == "error" and column.check(name).mostly == 1 for name in ("type", "not_null")
    )


def _cast(pd, column, values, nullable: bool):
    if column.type == "int":
        return values.astype("Int64" if nullable else "int64")
    if column.type == "float":
        return values.astype("float64")
    if column.type == "bool":
        return values.astype("boolean" if nullable else "bool")
    if column.type == "datetime":
        return values.astype("datetime64[ns, UTC]")
    if column.type == "category":
        categories = [str(v) for v in column.allowed] if column.allowed is not None else None
        return pd.Series(pd.Categorical(values, categories=categories), index=values.index)
    return values.astype(object).where(values.notna(), None)
