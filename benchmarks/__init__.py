"""`make bench`: Continuum's real code paths measured side by side with a plain reference, in one run.

Speed and memory goals live here, as ratios against a reference measured in the
same run on the same machine, never as timed assertions in tests: a ratio
survives a slower laptop or a busy CI runner, an absolute time does not.

A benchmark module (`bench_*.py`) exposes `comparisons(sizes) -> list[Comparison]`.
Each side of a comparison names a context-manager function (`"module:function"`)
whose set-up (imports, data, servers, one warm-up call on `WARM_UP` rows) runs before the `with` body and whose
yielded zero-argument callable is the one thing timed (called `REPEATS` times); it returns a small dict of
facts (a verdict, a row count) so the report can show that both sides did the same
work. `run.py` runs every side in a fresh subprocess (see its docstring for why).
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOMAIN = "insurance_claim_risk"
SEED = 1
DATA_ENV = "CONTINUUM_BENCH_DATA"
# Every side first runs its operation on this many rows, untimed: first-call costs (lazy imports,
# compiled regexes, GX's registries, a boto3 connection) are paid once per worker, not per batch.
WARM_UP = 500
# Timed runs of each operation per worker; the median time and the largest peak are reported.
REPEATS = 3
# A fact under this key is the side's own measurement of a whole child process's peak RSS (MB): it is the
# side's peak instead of the worker's (see benchmarks.bench_memory).
PROCESS_PEAK = "process_peak_mb"


@dataclass(frozen=True)
class Sizes:
    """Row counts of the cases; `tiny(n)` for a smoke run of every code path."""

    rows: int = 1_000_000  # validation, read, landing, scoring, drift frames
    train_rows: int = 200_000
    drift_sample: int = 50_000
    drift_unsampled: int = 200_000

    @classmethod
    def tiny(cls, n: int) -> Sizes:
        return cls(rows=n, train_rows=n, drift_sample=max(n // 2, 1), drift_unsampled=n)


@dataclass(frozen=True)
class Side:
    label: str
    target: str  # "benchmarks.bench_x:function", a context manager yielding the callable to time
    kwargs: dict[str, Any] = field(default_factory=dict)
    repeats: int = REPEATS  # 1 for an operation that can run only once per set-up (a step of one batch)
    timeout_s: float | None = None  # the worker's time limit, when longer than run.py's WORKER_TIMEOUT_S


@dataclass(frozen=True)
class Comparison:
    """Continuum's code path (`subject`) against a reference doing the same work."""

    case: str  # the name `python -m benchmarks.run <case>` selects
    name: str
    rows: int
    subject: Side
    reference: Side
    meaning: Callable[[dict, dict], str]  # one honest sentence from the two measurements
    notes: str = ""


def data_dir() -> Path:
    """Shared data files of one run: `CONTINUUM_BENCH_DATA`, else a new temporary directory
    that subprocesses inherit through that variable."""
    if not os.environ.get(DATA_ENV):
        os.environ[DATA_ENV] = tempfile.mkdtemp(prefix="continuum-bench-")
    path = Path(os.environ[DATA_ENV])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ensure(rows: int) -> tuple[Path, Path]:
    """The seeded insurance batch of `rows` rows as landed CSV and as validated parquet, made once."""
    base = data_dir()
    csv_path, parquet_path = base / f"{DOMAIN}_{rows}.csv", base / f"{DOMAIN}_{rows}.parquet"
    if not (csv_path.exists() and parquet_path.exists()):
        from continuum.simulate import generate
        from continuum.specs import get_domain
        from continuum.validation import conform

        frame = generate(DOMAIN, n=rows, seed=SEED)
        for path, write in (
            (csv_path, lambda p: frame.to_csv(p, index=False)),
            # conform(): the types a validated batch has in S3, i.e. what training and scoring read.
            (parquet_path, lambda p: conform(get_domain(DOMAIN), frame).to_parquet(p, index=False)),
        ):
            partial = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
            write(partial)
            partial.replace(path)  # atomic: a concurrent reader never sees half a file
    return csv_path, parquet_path


def insurance_csv(rows: int) -> bytes:
    """The batch as the bytes of a landed CSV file."""
    return _ensure(rows)[0].read_bytes()


def insurance_frame(rows: int):
    """The batch as the validation gate stores it (declared types)."""
    import pandas as pd

    return pd.read_parquet(_ensure(rows)[1])


def ratio(subject: dict, reference: dict, key: str = "seconds") -> float | None:
    a, b = subject.get(key), reference.get(key)
    if a is None or b is None or b <= 0:
        return None
    return a / b


def times(value: float | None, digits: int = 2) -> str:
    """A ratio for a sentence: "2.1x", or "n/a" when the reference's number was 0."""
    return "n/a" if value is None else f"{value:.{digits}f}x"


def free_port() -> int:
    """A free loopback port, for a server a benchmark starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def environ(changed: dict[str, str], also: tuple[str, ...] = ()) -> Generator[None, None, None]:
    """`os.environ` with `changed` for the `with` block; those variables (and `also`) restored after."""
    saved = {name: os.environ.get(name) for name in [*changed, *also]}
    os.environ.update(changed)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
