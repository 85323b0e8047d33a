"""The data contract of a domain spec as a Great Expectations suite.

Types are checked with regular expressions on the values *as written*, not by GX's
type expectations: a CSV arrives as text, so "abc" in an int column is a string
among strings, and a regex names it with its value. Range and set checks need real
numbers, so each expectation carries `meta["view"]`:

- "text":  every value as text (schema, types, nulls, uniqueness, duplicated rows,
           allowed values of category/string columns);
- "typed": values cast to the declared type, unparseable ones becoming null
           (ranges, allowed values of int/float/bool columns, the spec's extra
           expectations), so a type fault is reported once, by its regex.

`checks.validate` runs each part on its own view of the same batch.

Each expectation also carries `meta["check"]` and `meta["severity"]` from the spec
(`checks:` on a column or on `data`): an `error` failure quarantines the batch, a
`warn` failure is recorded and the batch goes on. A `mostly` below 1 becomes GX's own
`mostly` argument: the share of rows that must pass.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations as gx

    from continuum.specs import Check, Column, DomainSpec

TEXT, TYPED = "text", "typed"

# Values a declared type accepts as written. Ints allow a ".0" tail because parquet files and
# pandas write nullable int columns as floats; datetimes are ISO 8601 (the calendar itself is
# not checked here: "2024-13-40" passes the regex and becomes null in `conform`).
TYPE_PATTERNS = {
    "int": r"^[+-]?\d+(?:\.0*)?$",
    "float": r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$",
    "bool": r"(?i)^(?:true|false|yes|no|1|0|1\.0|0\.0)$",
    "datetime": r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$",
}


class SuiteError(ValueError):
    """A spec whose `data.expectations` cannot be turned into GX expectations."""


def import_gx():
    """Great Expectations with usage statistics off (set before the first import reads it)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    return great_expectations


def build_suite(spec: DomainSpec, labelled: bool = True) -> gx.ExpectationSuite:
    """The suite `<domain>_contract`: the declared columns, then the spec's extra expectations.

    An unlabelled batch (no target column at all: production data to score, whose
    labels come later) is valid without it; a target column that is present is checked.
    """
    gx = import_gx()
    expectations = _contract(gx, spec, labelled) + _extras(gx, spec)
    suffix = "" if labelled else "_unlabelled"
    return gx.ExpectationSuite(name=f"{spec.name}_contract{suffix}", expectations=expectations)


def _how(view: str, check: Check) -> dict[str, Any]:
    """The keyword arguments that carry a check's view, severity and tolerance."""
    tolerance = {"mostly": check.mostly} if check.mostly < 1 else {}
    return {"meta": {"view": view, "check": check.name, "severity": check.severity}, **tolerance}


def _contract(gx, spec: DomainSpec, labelled: bool = True) -> list[Any]:
    e = gx.expectations
    data = spec.data
    columns = [c for c in data.columns if labelled or c.name != data.target]
    names = [c.name for c in columns]
    schema = data.check("schema")
    found = [
        e.ExpectTableColumnsToMatchSet(
            column_set=names, exact_match=True, meta={"view": TEXT, "check": "schema", "severity": schema.severity}
        )
    ]
    # A missing declared column always quarantines: nothing downstream can do without it.
    exists = {"meta": {"view": TEXT, "check": "schema", "severity": "error"}}
    for column in columns:
        found += [e.ExpectColumnToExist(column=column.name, **exists), *_column(e, column)]
    if data.id_column:
        found.append(
            e.ExpectColumnValuesToBeUnique(column=data.id_column, **_how(TEXT, data.column(data.id_column).check("unique")))
        )
    if len(names) > 1:  # duplicated rows, whether or not an id column would also catch them
        # ignore_row_if="never": the default drops all-null rows first, a full-frame pass per metric.
        found.append(
            e.ExpectCompoundColumnsToBeUnique(
                column_list=names, ignore_row_if="never", **_how(TEXT, data.check("duplicated_rows"))
            )
        )
    return found


def _column(e, column: Column) -> list[Any]:
    found = []
    if column.type in TYPE_PATTERNS:
        found.append(
            e.ExpectColumnValuesToMatchRegex(
                column=column.name, regex=TYPE_PATTERNS[column.type], **_how(TEXT, column.check("type"))
            )
        )
    if not column.nullable:
        found.append(e.ExpectColumnValuesToNotBeNull(column=column.name, **_how(TEXT, column.check("not_null"))))
    if column.min is not None or column.max is not None:
        found.append(
            e.ExpectColumnValuesToBeBetween(
                column=column.name, min_value=column.min, max_value=column.max, **_how(TYPED, column.check("range"))
            )
        )
    if column.allowed is not None:
        textual = column.type in ("category", "string")
        values = [str(v) for v in column.allowed] if textual else list(column.allowed)
        found.append(
            e.ExpectColumnValuesToBeInSet(
                column=column.name, value_set=values, **_how(TEXT if textual else TYPED, column.check("allowed"))
            )
        )
    return found


def _extras(gx, spec: DomainSpec) -> list[Any]:
    from great_expectations.compatibility.pydantic import ValidationError  # GX models are pydantic v1
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    found = []
    for index, entry in enumerate(spec.data.expectations):
        where = f"{spec.source or spec.name}: data.expectations[{index}]"
        name = entry.get("type") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise SuiteError(f"{where} needs a 'type' such as expect_column_mean_to_be_between")
        try:
            cls = get_expectation_impl(name)
        except ExpectationNotFoundError:
            raise SuiteError(
                f"{where}: unknown expectation '{name}'; use a name from https://greatexpectations.io/expectations"
            ) from None
        kwargs = entry.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise SuiteError(f"{where}: 'kwargs' of '{name}' must be a mapping of argument names to values")
        severity = entry.get("severity", "error")
        if severity not in ("error", "warn"):
            raise SuiteError(f"{where}: severity '{severity}' must be error or warn")
        try:
            found.append(cls(**kwargs, meta={"view": TYPED, "source": "spec", "check": name, "severity": severity}))
        except (ValidationError, TypeError) as exc:
            problems = (
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
                if isinstance(exc, ValidationError)
                else str(exc)
            )
            raise SuiteError(f"{where}: bad kwargs for '{name}' ({problems}); fix them in the spec") from exc
    return found
