"""One prediction, explained: `continuum explain DOMAIN --row '{...}'`.

The row takes the road a landed batch takes before it reaches the model: written as a
one-row CSV, read by `validation.read_batch`, checked by the domain's GX suite
(`validation.validate`) and cast by `validation.conform`. Only then does the champion
score it, with the reason codes batch scoring writes (`continuum.reasons`), against the
champion's own training sample.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from continuum.specs import DomainSpec

ROW_ID = "explain"  # the id given to a row that brings none
_EXAMPLE = "'{\"column\": value, ...}'"


class RowError(ValueError):
    """A row that cannot be scored; the message says what is wrong in one line."""


class NoChampion(LookupError):
    """The domain has no champion to explain with yet."""


def _text(name: str, value: Any) -> str | None:
    """A JSON value as a CSV cell: how a batch writes it (null stays null)."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise RowError(f"--row column '{name}' must be a single value, not a JSON {type(value).__name__}")
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse_row(spec: DomainSpec, text: str) -> pd.DataFrame:
    """The row in `text` (a JSON object) as a one-row frame validated and typed like a batch; else RowError."""
    from continuum.validation import UnreadableBatch, conform, read_batch, validate

    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowError(f"--row is not JSON ({exc}); pass one object such as {_EXAMPLE}") from None
    if not isinstance(row, dict) or not row:
        raise RowError(f"--row must be a JSON object of column: value, such as {_EXAMPLE}")
    declared = [c.name for c in spec.data.columns]
    unknown = [name for name in row if name not in declared]
    if unknown:
        raise RowError(f"--row has column(s) {unknown} that {spec.name} does not declare; its columns: {', '.join(declared)}")
    if spec.data.id_column and spec.data.id_column not in row:
        row = {spec.data.id_column: ROW_ID, **row}
    missing = [name for name in declared if name not in row and name != spec.data.target]
    if missing:
        raise RowError(f"--row lacks column(s) {missing} that {spec.name} declares (data.columns in {spec.source})")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(list(row))
    writer.writerow(["" if (cell := _text(k, v)) is None else cell for k, v in row.items()])
    try:
        frame = read_batch(buffer.getvalue().encode(), "csv")
    except UnreadableBatch as exc:
        raise RowError(f"--row cannot be read as data: {exc.reason}") from None
    result = validate(spec, frame)
    failed = [f for f in result.failed if f.expectation != "expect_compound_columns_to_be_unique"]
    if failed:
        raise RowError(f"--row breaks the {spec.name} contract: " + "; ".join(_describe(spec, f, row) for f in failed))
    return conform(spec, frame)


def _describe(spec: DomainSpec, failure, row: dict[str, Any]) -> str:
    """`column value what is wrong`, in the contract's words."""
    column = failure.column
    if column is None:
        return failure.describe()
    declared = spec.data.column(column)
    value = json.dumps(row.get(column))
    if failure.expectation == "expect_column_values_to_match_regex":
        return f"{column} {value} is not a valid {declared.type}"
    if failure.expectation == "expect_column_values_to_not_be_null":
        return f"{column} is null but the contract requires a value"
    if failure.expectation == "expect_column_values_to_be_between":
        bounds = ", ".join(f"{k} {v:g}" for k, v in (("min", declared.min), ("max", declared.max)) if v is not None)
        return f"{column} {value} is outside its range ({bounds})"
    if failure.expectation == "expect_column_values_to_be_in_set":
        return f"{column} {value} is not one of {declared.allowed}"
    return failure.describe()


def explain_row(spec: DomainSpec, row: pd.DataFrame) -> dict[str, Any]:
    """The champion's score for `row` (from `parse_row`), its reason codes and the model version.

    Raises NoChampion when the domain has none yet.
    """
    from continuum import metrics, registry, scoring, storage, training
    from continuum.storage import Keys

    champion = registry.champion(spec.name)
    if champion is None:
        raise NoChampion(f"{spec.name} has no champion yet; ingest a labelled batch first (continuum ingest --run)")
    model = registry.load(spec.name, champion.version)
    reference = storage.get_frame(Keys(spec.name).reference(champion.version))
    probability = float(metrics.positive_scores(spec, model, training.features(spec, row))[0])
    reasons = scoring.reason_columns(spec, model, row, reference).iloc[0]
    return {
        "domain": spec.name,
        "model_version": champion.version,
        "score": _score(spec, model, row, reference, probability),
        "reason_codes": [r for r in reasons.tolist() if r is not None],
    }


def _score(spec: DomainSpec, model, row: pd.DataFrame, reference: pd.DataFrame, probability: float) -> dict[str, Any]:
    """The row's scores as batch scoring names them (see `scoring`); a premium needs `scoring.base_rate`,
    since without it a batch is priced against its own mean and one row has no batch."""
    kind = spec.scoring.kind
    if kind == "recommendations" or (kind == "premium" and (spec.scoring.model_extra or {}).get("base_rate") is None):
        names = {"premium": "claim_probability", "recommendations": "score"}
        found: dict[str, Any] = {names[kind]: probability}
        if kind == "premium":
            found["premium"] = None
            found["note"] = "set scoring.base_rate to price one policy: a batch is priced against its own mean"
        return found
    from continuum import scoring

    scores = scoring.score(spec, model, row, reference=reference).iloc[0]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in scores.items() if not k.startswith("reason_")}
