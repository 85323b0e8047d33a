"""Drift check cost: `detect_drift` on 1M x 12 rows (sampled to 50k) against Evidently on 200k rows unsampled.

Why: DataDriftPreset's cost grows with rows (1M x 25 took ~133 s here), so
`detect_drift` samples both frames to `max_rows`. This measures what the sampling
buys and that the verdict stays the same. Run: `.venv/bin/python -m benchmarks.bench_drift`.
`main()` returns the numbers in one process; `comparisons()` gives `make bench`
(benchmarks/run.py) the two sides, each measured in its own subprocess with its peak memory.
The frame is synthetic (8 numeric, 4 categorical columns, a known shift) rather than a
domain's, so the drifted columns are known and the verdicts can be checked.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pandas as pd

from benchmarks import WARM_UP, Comparison, Side, Sizes, ratio, times
from continuum.specs import DomainSpec

NUMERIC = [f"num_{i}" for i in range(8)]
CATEGORIES = [f"cat_{i}" for i in range(4)]
SHIFTED = ["num_0", "num_1", "cat_0"]


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


def frame(rows: int, seed: int, shift: bool) -> pd.DataFrame:
    """12 features; with `shift`, two numeric columns move by one sd and one category mix changes."""
    rng = np.random.default_rng(seed)
    data = {n: rng.normal(1.0 if shift and n in SHIFTED else 0.0, 1.0, rows) for n in NUMERIC}
    for n in CATEGORIES:
        p = [0.7, 0.1, 0.1, 0.1] if shift and n in SHIFTED else [0.25] * 4
        data[n] = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), rows, p=p)
    data["label"] = rng.integers(0, 2, rows)
    return pd.DataFrame(data)


def timed(spec, reference, current, max_rows):
    from continuum.monitoring import detect_drift

    start = time.perf_counter()
    result, html = detect_drift(spec, reference, current, max_rows=max_rows)
    return time.perf_counter() - start, result


def main() -> dict[str, float]:
    spec = bench_spec()
    start = time.perf_counter()
    import evidently  # noqa: F401  (paid once, kept out of the timings below)

    import_seconds = time.perf_counter() - start
    big_ref, big_cur = frame(1_000_000, 1, False), frame(1_000_000, 2, True)
    sampled_seconds, sampled = timed(spec, big_ref, big_cur, 50_000)
    mid_ref, mid_cur = big_ref.iloc[:200_000], big_cur.iloc[:200_000]
    full_seconds, full = timed(spec, mid_ref, mid_cur, 200_000)
    assert sorted(sampled.columns) == sorted(full.columns) == sorted(SHIFTED), (sampled.columns, full.columns)
    return {
        "evidently_import_s": round(import_seconds, 2),
        "sampled_1m_to_50k_s": round(sampled_seconds, 2),
        "unsampled_200k_s": round(full_seconds, 2),
        "unsampled_1m_estimate_s": round(full_seconds * 5, 1),
        "speedup_vs_200k": round(full_seconds / sampled_seconds, 1),
        "share_sampled": round(sampled.share, 3),
        "share_unsampled": round(full.share, 3),
    }


@contextmanager
def drift_side(rows: int, max_rows: int):
    """`detect_drift` on a reference and a shifted current frame of `rows` rows each, sampled to `max_rows`."""
    import evidently  # noqa: F401  (~8 s, paid once per worker: kept out of the timing)

    from continuum.monitoring import detect_drift

    spec = bench_spec()
    reference, current = frame(rows, 1, False), frame(rows, 2, True)
    detect_drift(spec, reference.head(WARM_UP), current.head(WARM_UP), max_rows=max_rows)

    def run() -> dict:
        result, _ = detect_drift(spec, reference, current, max_rows=max_rows)
        return {
            "drifted": sorted(result.columns),
            "share": round(result.share, 3),
            "compared_rows": min(rows, max_rows),
        }

    yield run


def _meaning(s: dict, r: dict) -> str:
    agree = "the same" if s["facts"]["drifted"] == r["facts"]["drifted"] else "DIFFERENT"
    estimate = r["seconds"] * s["rows"] / r["rows"]
    return (
        f"Sampled to {s['facts']['compared_rows']:,} rows, the check on {s['rows']:,} rows takes "
        f"{times(ratio(s, r), 2)} the time and {times(ratio(s, r, 'peak_mb'), 2)} the peak memory of Evidently on "
        f"{r['rows']:,} unsampled rows and names {agree} drifted columns; unsampled at {s['rows']:,} rows it "
        f"would take about {estimate:.0f} s (linear extrapolation of the reference, not measured)."
    )


def comparisons(sizes: Sizes) -> list[Comparison]:
    return [
        Comparison(
            case="drift",
            name="drift: detect_drift sampled vs Evidently unsampled",
            rows=sizes.rows,
            subject=Side(
                f"detect_drift {sizes.rows:,} rows sampled to {sizes.drift_sample:,}",
                "benchmarks.bench_drift:drift_side",
                {"rows": sizes.rows, "max_rows": sizes.drift_sample},
            ),
            reference=Side(
                f"detect_drift {sizes.drift_unsampled:,} rows unsampled",
                "benchmarks.bench_drift:drift_side",
                {"rows": sizes.drift_unsampled, "max_rows": sizes.drift_unsampled},
            ),
            meaning=_meaning,
            notes="synthetic 12-column frame with 3 shifted columns (bench_drift.frame)",
        )
    ]


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}={value}")
