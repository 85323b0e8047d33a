"""Validation gate cost: the GX suite against the same data contract checked in plain pandas.

Both sides get the frame the gate gets: `read_batch` of a landed CSV, every value as
text. The pandas reference checks what the suite checks (column set, type regexes on
the text, nulls, ranges and allowed values on the parsed numbers, id uniqueness,
duplicated rows), so the ratio is the price of running the contract through GX.
Second comparison: `read_batch` (pyarrow, all text) against `pandas.read_csv`.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

from benchmarks import DOMAIN, WARM_UP, Comparison, Side, Sizes, insurance_csv, ratio, times


def _head(data: bytes) -> bytes:
    """The header and the first WARM_UP lines of a CSV."""
    return b"\n".join(data.split(b"\n", WARM_UP + 1)[: WARM_UP + 1])


@contextmanager
def gx_validate(rows: int):
    from continuum.specs import get_domain
    from continuum.validation import read_batch, validate
    from continuum.validation.suite import import_gx

    import_gx()
    spec = get_domain(DOMAIN)
    frame = read_batch(insurance_csv(rows), "csv")
    validate(spec, frame.head(WARM_UP))

    def run() -> dict:
        result = validate(spec, frame)
        return {"success": result.success, "checks": result.evaluated, "failed": len(result.failed)}

    yield run


@contextmanager
def pandas_contract(rows: int):
    from continuum.specs import get_domain
    from continuum.validation import read_batch

    spec = get_domain(DOMAIN)
    frame = read_batch(insurance_csv(rows), "csv")
    check_contract(spec, frame.head(WARM_UP))
    yield lambda: check_contract(spec, frame)


def check_contract(spec, frame) -> dict:
    """The domain's contract checked with plain pandas on the text frame; the reference for GX."""
    import pandas as pd

    from continuum.validation.suite import TYPE_PATTERNS  # the contract's definition of "an int" etc.

    failed: list[str] = []
    checks = 1
    names = [c.name for c in spec.data.columns]
    if set(frame.columns) != set(names):
        failed.append("columns")
    for column in spec.data.columns:
        if column.name not in frame.columns:
            continue
        text = frame[column.name]
        present = text.dropna()
        if column.type in TYPE_PATTERNS:
            checks += 1
            if not present.astype(str).str.match(TYPE_PATTERNS[column.type]).all():
                failed.append(f"type({column.name})")
        if not column.nullable:
            checks += 1
            if text.isna().any():
                failed.append(f"not_null({column.name})")
        numbers = pd.to_numeric(text, errors="coerce") if column.type in ("int", "float") else None
        if column.min is not None or column.max is not None:
            checks += 1
            low = column.min if column.min is not None else -float("inf")
            high = column.max if column.max is not None else float("inf")
            valid = numbers.dropna()
            if not valid.between(low, high).all():
                failed.append(f"range({column.name})")
        if column.allowed is not None:
            checks += 1
            if column.type in ("category", "string"):
                ok = present.astype(str).isin([str(v) for v in column.allowed]).all()
            else:
                ok = numbers.dropna().isin(column.allowed).all()
            if not ok:
                failed.append(f"allowed({column.name})")
    if spec.data.id_column:
        checks += 1
        if frame[spec.data.id_column].duplicated().any():
            failed.append(f"unique({spec.data.id_column})")
    checks += 1
    if frame[[n for n in names if n in frame.columns]].duplicated().any():
        failed.append("duplicated_rows")
    return {"success": not failed, "checks": checks, "failed": len(failed)}


@contextmanager
def read_batch_csv(rows: int):
    from continuum.validation import read_batch

    data = insurance_csv(rows)
    read_batch(_head(data), "csv")

    def run() -> dict:
        return {"rows": len(read_batch(data, "csv"))}

    yield run


@contextmanager
def pandas_read_csv(rows: int):
    import pandas as pd

    data = insurance_csv(rows)
    pd.read_csv(io.BytesIO(_head(data)))

    def run() -> dict:
        return {"rows": len(pd.read_csv(io.BytesIO(data)))}

    yield run


def _validate_meaning(s: dict, r: dict) -> str:
    agree = "agree" if s["facts"]["success"] == r["facts"]["success"] else "DISAGREE"
    return (
        f"The GX gate takes {times(ratio(s, r), 1)} the time and {times(ratio(s, r, 'peak_mb'), 2)} the peak memory of "
        f"the same contract checked in plain pandas ({s['seconds']:.1f} s vs {r['seconds']:.1f} s; verdicts "
        f"{agree}): GX evaluates each of its {s['facts']['checks']} expectations as its own metric computation "
        "and builds a typed copy of the batch, which buys the per-value failure report of the quarantine."
    )


def _read_meaning(s: dict, r: dict) -> str:
    speed = "faster than" if s["seconds"] < r["seconds"] else "slower than"
    return (
        f"read_batch (pyarrow, every column as text) is {speed} pandas.read_csv with type inference "
        f"({times(ratio(s, r), 2)} the time, {times(ratio(s, r, 'peak_mb'), 2)} the peak memory), so reading as text, "
        "which lets the gate name a bad value as written, costs the gate nothing worth counting."
    )


def comparisons(sizes: Sizes) -> list[Comparison]:
    rows = {"rows": sizes.rows}
    return [
        Comparison(
            case="validation",
            name="validate: GX suite vs pandas checks",
            rows=sizes.rows,
            subject=Side("continuum.validation.validate", "benchmarks.bench_validation:gx_validate", rows),
            reference=Side("inline pandas checks", "benchmarks.bench_validation:pandas_contract", rows),
            meaning=_validate_meaning,
        ),
        Comparison(
            case="validation",
            name="read: read_batch vs pandas.read_csv",
            rows=sizes.rows,
            subject=Side(
                "continuum.validation.read_batch", "benchmarks.bench_validation:read_batch_csv", rows
            ),
            reference=Side("pandas.read_csv", "benchmarks.bench_validation:pandas_read_csv", rows),
            meaning=_read_meaning,
        ),
    ]
