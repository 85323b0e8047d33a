"""Drift verdicts on every row: Evidently's own default tests, from a reference profile made once.

Measured (benchmarks/bench_drift.py): Evidently's `DataDriftPreset` on 1M x 25 rows takes
about 133 s here. Almost none of it is the test. Above 1,000 reference rows its default
test is a distance with a fixed threshold of 0.1:
- a numeric column with more than 5 distinct values (over both frames): the Wasserstein
  distance divided by the reference's standard deviation (at least 0.001);
- a categorical column, or a numeric one with at most 5 values: the Jensen-Shannon
  distance (natural log) between the two value frequencies.
The time goes on what its report needs: histograms, correlations, plots per column.

This module computes exactly those tests, on every row, after the same cleaning (infinite
values are missing, missing values are dropped). It does so from a profile of the reference
that is built once per champion and kept next to it in S3, and not per batch. The profile
holds the sorted finite values and standard deviation of each numeric column, and the value
counts of each categorical one. A batch then costs one sort or one count per column. The
Evidently HTML report is still made for people, on a sample (`continuum.monitoring`).
With 1,000 reference rows or fewer, Evidently switches to p-value tests (KS, chi-square,
z). Their verdicts depend on the row count, so such columns are left to Evidently
(`needs_evidently`). Agreement with Evidently unsampled, over a grid of shift sizes, is in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

THRESHOLD = 0.1  # Evidently's default for both distances
MIN_REFERENCE_ROWS = 1000  # at or below this, Evidently uses p-value tests instead
FEW_VALUES = 5  # a numeric column with at most this many distinct values is compared as categories
WASSERSTEIN = "Wasserstein distance (normed)"  # Evidently's names for the same tests
JENSEN_SHANNON = "Jensen-Shannon distance"
FORMAT = 1
ALL_MISSING = "all_missing"


@dataclass
class ColumnProfile:
    """What a batch's column is compared with: sorted finite values (numeric) or value counts."""

    kind: str  # "numeric" or "categorical"
    rows: int  # non-missing reference values
    sorted_values: np.ndarray | None = None
    std: float | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _finite(series: pd.Series) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(series, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    return values[np.isfinite(values)]


def _value_counts(series: pd.Series) -> dict[str, int]:
    """Counts of the present values, keyed as text, so the same value reads the same in both frames.

    Counted before the conversion to text: on a million-row categorical that is a count of
    its categories, not a million string conversions.
    """
    counts: dict[str, int] = {}
    for value, n in series.value_counts(dropna=True, sort=False).items():
        if n:
            counts[_key(value)] = counts.get(_key(value), 0) + int(n)
    return counts


def _key(value: Any) -> str:
    """1, 1.0 and np.int64(1) are one value (as they are to pandas and Evidently); True is not 1."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.number):
        return repr(float(value))
    return str(value)


def _few_value_counts(values: np.ndarray) -> dict[str, int]:
    """Value counts of sorted finite numbers when there are at most FEW_VALUES of them, else {}."""
    if not values.size or np.count_nonzero(np.diff(values)) + 1 > FEW_VALUES:
        return {}
    uniques, n = np.unique(values, return_counts=True)
    return {repr(float(u)): int(c) for u, c in zip(uniques, n, strict=True)}


def profile_column(series: pd.Series, kind: str) -> ColumnProfile:
    if kind == "numeric":
        values = np.sort(_finite(series))
        std = float(np.std(values)) if values.size else None
        return ColumnProfile("numeric", int(values.size), values, std, _few_value_counts(values))
    counts = _value_counts(series)
    return ColumnProfile("categorical", int(sum(counts.values())), counts=counts)


def profile(reference: pd.DataFrame, numerical: list[str], categorical: list[str]) -> dict[str, ColumnProfile]:
    """The reference's profile for the compared columns (made once per champion)."""
    columns = {name: profile_column(reference[name], "numeric") for name in numerical}
    columns.update({name: profile_column(reference[name], "categorical") for name in categorical})
    return columns


def needs_evidently(column: ColumnProfile) -> bool:
    """Too few reference rows for the distance tests: Evidently's p-value tests decide."""
    return column.rows <= MIN_REFERENCE_ROWS


def wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """The first Wasserstein distance of two sorted samples: the area between their quantile functions.

    Equal to `scipy.stats.wasserstein_distance` (tests/unit/test_drift_stats.py), which sorts
    both samples and their union for every call. Here the reference is sorted once per champion,
    and nothing else is sorted. The quantile function of `u` steps at k/n, and that of `v` at
    l/m. Scaled by n*m, the steps are the integers k*m and l*n. Their merged order is known
    without sorting, since exactly floor(l*n/m) of the k*m lie at or below l*n. Between two
    consecutive steps both functions are constant: u[ceil(p*n) - 1] and v[ceil(p*m) - 1].
    Everything stays in exact integer arithmetic until the final sum.
    """
    n, m = u.size, v.size
    if n == 0 or m == 0:
        raise ValueError("the Wasserstein distance needs values on both sides")
    k = np.arange(1, n + 1, dtype=np.int64)
    l = np.arange(1, m + 1, dtype=np.int64)  # noqa: E741  (the step index of the formula)
    at_b = l * n // m + l - 1  # where step l*n of `v` falls in the merged order (ties: after u's)
    from_b = np.zeros(n + m, dtype=bool)
    from_b[at_b] = True
    steps = np.empty(n + m, dtype=np.int64)
    steps[at_b] = l * n
    steps[~from_b] = k * m
    widths = np.diff(steps, prepend=0)
    iu = (steps + m - 1) // m - 1
    iv = (steps + n - 1) // n - 1
    return float(np.dot(widths, np.abs(u[iu] - v[iv])) / (n * m))


def _jensen_shannon(reference: dict[str, int], current: dict[str, int]) -> float:
    from scipy.spatial import distance

    keys = sorted({*reference, *current})
    p = np.array([reference.get(k, 0) for k in keys], dtype="float64")
    q = np.array([current.get(k, 0) for k in keys], dtype="float64")
    return float(distance.jensenshannon(p / p.sum(), q / q.sum()))


def column_drift(column: ColumnProfile, current: pd.Series) -> dict[str, Any]:
    """{"stattest", "score", "threshold", "drifted"} of one column, Evidently's default test on every row."""
    if column.kind == "categorical":
        score = _jensen_shannon(column.counts, _value_counts(current))
        return _verdict(JENSEN_SHANNON, score)
    values = np.sort(_finite(current))
    if not values.size:  # every value missing or infinite: as far from the reference as it gets
        return {"stattest": ALL_MISSING, "score": 1.0, "threshold": 0.5, "drifted": True}
    if column.counts:  # few values in the reference: few over both frames too?
        counts = _few_value_counts(values)
        if counts and len({*column.counts, *counts}) <= FEW_VALUES:
            return _verdict(JENSEN_SHANNON, _jensen_shannon(column.counts, counts))
    score = wasserstein_sorted(column.sorted_values, values) / max(column.std or 0.0, 0.001)
    return _verdict(WASSERSTEIN, score)


def _verdict(stattest: str, score: float) -> dict[str, Any]:
    return {"stattest": stattest, "score": score, "threshold": THRESHOLD, "drifted": bool(score >= THRESHOLD)}


def to_bytes(columns: dict[str, ColumnProfile]) -> bytes:
    """An .npz: the sorted values as arrays, the rest as JSON text (read back without pickle)."""
    meta = {
        name: {"kind": c.kind, "rows": c.rows, "std": c.std, "counts": c.counts} for name, c in columns.items()
    }
    arrays = {f"values_{i}": c.sorted_values for i, c in enumerate(columns.values()) if c.sorted_values is not None}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps({"format": FORMAT, "columns": meta})), **arrays)
    return buffer.getvalue()


def from_bytes(data: bytes) -> dict[str, ColumnProfile]:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        meta = json.loads(str(stored["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"drift profile format {meta.get('format')!r}, expected {FORMAT}: rebuild it")
        columns = {}
        for i, (name, entry) in enumerate(meta["columns"].items()):
            values = stored[f"values_{i}"] if entry["kind"] == "numeric" else None
            columns[name] = ColumnProfile(entry["kind"], int(entry["rows"]), values, entry["std"], entry["counts"])
    return columns
