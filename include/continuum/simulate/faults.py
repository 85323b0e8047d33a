"""Generic data faults, injected from the domain's data contract.

Each injector breaks exactly one rule of the contract, on purpose and
deterministically (the caller passes a seeded generator), so a test or a demo can
say which check must catch it. They return a new frame and never touch their input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from continuum.specs import Column, DomainSpec

SHARE = 0.05  # rows touched by a fault: enough to fail a check, few enough to look like real data
UNSEEN_VALUE = "unseen"
WRONG_TYPE_VALUE = "unknown"

Injector = Callable[[pd.DataFrame, DomainSpec, np.random.Generator], pd.DataFrame]


def _features(spec: DomainSpec, frame: pd.DataFrame) -> list[Column]:
    return [c for c in spec.data.feature_columns if c.name in frame.columns]


def _first(columns: list[Column], fault: str, what: str) -> Column:
    if not columns:
        raise ValueError(f"fault '{fault}' needs {what} in the data contract; pick another fault")
    return columns[0]


def _rows(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Positions of the rows a fault touches: at least one."""
    count = max(1, int(len(frame) * SHARE))
    return rng.choice(len(frame), size=min(count, len(frame)), replace=False)


def unseen_category(frame: pd.DataFrame, spec: DomainSpec, rng: np.random.Generator) -> pd.DataFrame:
    """A value outside `allowed` in the first category column (a new region, a new product)."""
    column = _first(
        [c for c in _features(spec, frame) if c.type in ("category", "string") and c.allowed],
        "unseen_category",
        "a category column with allowed values",
    )
    out = frame.copy()
    out.iloc[_rows(out, rng), out.columns.get_loc(column.name)] = UNSEEN_VALUE
    return out


def nulls(frame: pd.DataFrame, spec: DomainSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Missing values in the first two feature columns that the contract says are never null."""
    columns = [c for c in _features(spec, frame) if not c.nullable][:2]
    _first(columns, "nulls", "a non-nullable feature column")
    out = frame.copy()
    for column in columns:
        if out[column.name].dtype == bool:
            out[column.name] = out[column.name].astype(object)
        elif pd.api.types.is_integer_dtype(out[column.name]):
            out[column.name] = out[column.name].astype("float64")
        out.iloc[_rows(out, rng), out.columns.get_loc(column.name)] = None
    return out


def out_of_range(frame: pd.DataFrame, spec: DomainSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Values above `max` (or below `min`) in the first bounded numeric feature column."""
    column = _first(
        [c for c in _features(spec, frame) if c.max is not None or c.min is not None],
        "out_of_range",
        "a numeric column with min or max",
    )
    value = column.max * 2 + 1 if column.max is not None else column.min - abs(column.min) - 1
    out = frame.copy()
    if column.type == "int":
        value = int(value)
    out.iloc[_rows(out, rng), out.columns.get_loc(column.name)] = value
    return out


def missing_column(frame: pd.DataFrame, spec: DomainSpec, rng: np.random.Generator) -> pd.DataFrame:
    """The first required feature column is not delivered at all."""
    column = _first(
        [c for c in _features(spec, frame) if not c.nullable], "missing_column", "a feature column"
    )
    return frame.drop(columns=[column.name])


def renamed_name(name: str) -> str:
    """What an upstream system 'helpfully' renames a column to: snake_case becomes camelCase."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest) if rest else f"{name}_v2"


def renamed_column(frame: pd.DataFrame, spec: DomainSpec, rng: np.random.Generator) -> pd.DataFrame:
    """The first feature column arrives under another name (see `renamed_name`)."""
    column = _first(_features(spec, frame), "renamed_column", "a feature column")
    return frame.rename(columns={column.name: renamed_name(column.name)})


def duplicated_rows(frame: pd.DataFrame, spec: DomainSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Some rows delivered twice, id and all (a retried export)."""
    copies = frame.iloc[np.sort(_rows(frame, rng))]
    return pd.concat([frame, copies], ignore_index=True)


def wrong_types(frame: pd.DataFrame, spec: DomainSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Text in the first int feature column: the column becomes strings (object dtype)."""
    column = _first(
        [c for c in _features(spec, frame) if c.type == "int"], "wrong_types", "an int feature column"
    )
    out = frame.copy()
    values = out[column.name].astype(str).to_numpy(dtype=object)
    values[_rows(out, rng)] = WRONG_TYPE_VALUE
    out[column.name] = pd.Series(values, index=out.index, dtype=object)
    return out


def unlabelled(frame: pd.DataFrame, spec: DomainSpec, rng: np.random.Generator) -> pd.DataFrame:
    """A scoring batch: the label is not known yet."""
    return frame.drop(columns=[spec.data.target], errors="ignore")


INJECTORS: dict[str, Injector] = {
    "unseen_category": unseen_category,
    "nulls": nulls,
    "out_of_range": out_of_range,
    "missing_column": missing_column,
    "renamed_column": renamed_column,
    "duplicated_rows": duplicated_rows,
    "wrong_types": wrong_types,
    "unlabelled": unlabelled,
}
