"""Drift at 1,000,000 vs 1,000,000 rows x 25 columns: `detect_drift` against Evidently unsampled.

Issue #12, bar 2. `detect_drift` must be at least 30x faster than Evidently's
`DataDriftPreset` with its defaults on the full data, and its per-column verdict must
agree with that reference on at least 95% of columns, across a grid of shift sizes
(none, small, medium, large) over numeric and categorical columns.

Both sides run the whole grid on the same frames. Continuum's side is what the monitor task
does per batch: `detect_drift` on every row, with the reference's profile made once per
champion (its cost is in the facts, not the timing), without the HTML report (made on a
sample, timed apart as `report_s`). The reference is Evidently's report on the full frames,
with `parse_snapshot` reading its per-column tests. The frame is synthetic (15 numeric
columns, 3 of them with four values, and 10 categorical columns). Each grid step shifts the
first 4 numeric, the first 2 few-valued and the first 3 categorical columns by its size, so
the drifted columns are known and agreement covers both verdicts, drifted and not.
Run one side alone: `.venv/bin/python -m benchmarks.run drift`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pandas as pd

from benchmarks import WARM_UP, Comparison, Side, Sizes, ratio, times
from continuum.specs import DomainSpec

CONTINUOUS = [f"num_{i}" for i in range(12)]
FEW_VALUED = [f"few_{i}" for i in range(3)]
CATEGORIES = [f"cat_{i}" for i in range(10)]
NUMERIC = [*CONTINUOUS, *FEW_VALUED]
SHIFTED = {*CONTINUOUS[:4], *FEW_VALUED[:2], *CATEGORIES[:3]}
GRID = {"none": 0.0, "small": 0.05, "medium": 0.2, "large": 0.5}  # sd units, and mixing weight
BAR_SPEEDUP = 30
BAR_AGREEMENT = 0.95


def bench_spec() -> DomainSpec:
    columns = [{"name": n, "type": "float"} for n in NUMERIC]
    columns += [{"name": n, "type": "category"} for n in CATEGORIES]
    columns += [{"name": "label", "type": "int"}]
    return DomainSpec.model_validate(
        {
            "name": "bench_drift",
            "description": "synthetic frame for the drift benchmark",
            "owner": "bench",
            "data": {"target": "label", "columns": columns},
            "monitoring": {"drift_share": 0.2},
        }
    )


def frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    """25 features; the columns in SHIFTED move by `shift` (numeric: sd units; categorical: mix)."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i, name in enumerate(CONTINUOUS):
        moved = shift if name in SHIFTED else 0.0
        data[name] = rng.normal(moved, 1.0, rows) if i % 2 else rng.lognormal(moved * 0.5, 0.5, rows)
    for name in FEW_VALUED:
        data[name] = rng.choice([0.0, 1.0, 2.0, 3.0], rows, p=_mix([0.6, 0.25, 0.1, 0.05], shift if name in SHIFTED else 0.0))
    labels = np.array(["a", "b", "c", "d", "e"], dtype=object)
    for name in CATEGORIES:
        data[name] = rng.choice(labels, rows, p=_mix([0.4, 0.25, 0.15, 0.12, 0.08], shift if name in SHIFTED else 0.0))
    data["label"] = rng.integers(0, 2, rows)
    return pd.DataFrame(data)


def _mix(p: list[float], weight: float) -> list[float]:
    moved = np.array(p) * (1 - weight) + np.array(p[::-1]) * weight
    return list(moved / moved.sum())


def _frames(rows: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    return frame(rows, 1, 0.0), {size: frame(rows, 2 + k, shift) for k, (size, shift) in enumerate(GRID.items())}


@contextmanager
def continuum_side(rows: int):
    """`detect_drift` on every row of each grid frame, against a profile made once."""
    from continuum import drift_stats, monitoring

    spec = bench_spec()
    reference, currents = _frames(rows)
    monitoring.detect_drift(spec, reference.head(WARM_UP), currents["none"].head(WARM_UP), report=False)
    started = time.perf_counter()
    profile = drift_stats.profile(reference, NUMERIC, CATEGORIES)
    profile_s = time.perf_counter() - started
    started = time.perf_counter()
    monitoring.detect_drift(spec, reference, currents["medium"], profile=profile)  # the HTML, on a sample
    report_s = time.perf_counter() - started

    def run() -> dict:
        verdicts = {}
        for size, current in currents.items():
            result, _ = monitoring.detect_drift(spec, reference, current, profile=profile, report=False)
            verdicts[size] = _bits(result.scores)
        return {"verdicts": verdicts, "profile_s": round(profile_s, 2), "report_s": round(report_s, 2)}

    yield run


@contextmanager
def evidently_side(rows: int):
    """Evidently's DataDriftPreset with its defaults on the full frames of each grid step."""
    import evidently  # noqa: F401  (~8 s, paid once: kept out of the timing)

    from continuum import monitoring

    reference, currents = _frames(rows)
    ref = monitoring._prepare(reference, NUMERIC, CATEGORIES, "reference", rows, 0)
    curs = {size: monitoring._prepare(c, NUMERIC, CATEGORIES, "current", rows, 0) for size, c in currents.items()}
    monitoring._run_evidently(ref.head(WARM_UP), curs["none"].head(WARM_UP), NUMERIC, CATEGORIES, 0.2)

    def run() -> dict:
        verdicts = {}
        for size, current in curs.items():
            snapshot = monitoring._run_evidently(ref, current, NUMERIC, CATEGORIES, 0.2)
            scores, _ = monitoring.parse_snapshot(snapshot.dict())
            verdicts[size] = _bits(scores)
        return {"verdicts": verdicts}

    yield run


def _bits(scores: dict) -> str:
    """The verdicts in column order (numeric, then categorical), one character each: 1 drifted, 0 not."""
    return "".join("1" if scores[name]["drifted"] else "0" for name in [*NUMERIC, *CATEGORIES])


def agreement(ours: dict[str, str], theirs: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per grid step and column kind: the share of columns whose verdicts agree."""
    kinds = {"numeric": range(len(NUMERIC)), "categorical": range(len(NUMERIC), len(NUMERIC) + len(CATEGORIES))}
    table = {}
    for size in GRID:
        same = [a == b for a, b in zip(ours[size], theirs[size], strict=True)]
        row = {kind: float(np.mean([same[i] for i in columns])) for kind, columns in kinds.items()}
        row["all"] = float(np.mean(same))
        row["drifted (Evidently)"] = theirs[size].count("1")
        table[size] = row
    return table


def _meaning(s: dict, r: dict) -> str:
    table = agreement(s["facts"]["verdicts"], r["facts"]["verdicts"])
    overall = float(np.mean([row["all"] for row in table.values()]))
    speedup = 1 / ratio(s, r) if ratio(s, r) else None
    rows = "; ".join(
        f"{size}: {row['all']:.0%} (numeric {row['numeric']:.0%}, categorical {row['categorical']:.0%}, "
        f"{row['drifted (Evidently)']} drifted)"
        for size, row in table.items()
    )
    met = speedup is not None and speedup >= BAR_SPEEDUP and overall >= BAR_AGREEMENT
    return (
        f"Over the {len(GRID)} grid steps, detect_drift on every row takes {times(ratio(s, r), 3)} the time of "
        f"Evidently unsampled ({speedup or 0:.0f}x faster; bar {BAR_SPEEDUP}x) and agrees on {overall:.0%} of the "
        f"column verdicts (bar {BAR_AGREEMENT:.0%}): {rows}. The reference profile, made once per champion, took "
        f"{s['facts']['profile_s']} s; the HTML report on a 50,000-row sample, {s['facts']['report_s']} s per batch. "
        f"Bar {'met' if met else 'missed'}."
    )


def comparisons(sizes: Sizes) -> list[Comparison]:
    return [
        Comparison(
            case="drift",
            name="drift: detect_drift every row vs Evidently unsampled",
            rows=sizes.rows,
            subject=Side(
                f"detect_drift on {sizes.rows:,} vs {sizes.rows:,} rows x 25, {len(GRID)} shift sizes",
                "benchmarks.bench_drift:continuum_side",
                {"rows": sizes.rows},
            ),
            reference=Side(
                f"Evidently DataDriftPreset defaults on {sizes.rows:,} vs {sizes.rows:,} rows x 25, {len(GRID)} shift sizes",
                "benchmarks.bench_drift:evidently_side",
                {"rows": sizes.rows},
                repeats=1,
                timeout_s=3600,  # four DataDriftPreset runs of ~133 s each on a quiet machine
            ),
            meaning=_meaning,
            notes="synthetic 25-column frame (bench_drift.frame): 12 continuous, 3 four-valued, 10 categorical; "
            "grid none / small (0.05) / medium (0.2) / large (0.5)",
        )
    ]
