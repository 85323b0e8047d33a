"""Run the benchmarks and write benchmarks/RESULTS.md: `python -m benchmarks.run [case ...]`.

Cases: validation, drift, landing, training, redaction, parsing, memory, loop, rescoring (all when none is named),
and topology (only when named, see `SEPARATE`). `--tiny N` runs
every code path at N rows and writes no RESULTS.md unless `--output` says where.

How a side is measured: each side of each comparison runs in a fresh Python
subprocess, so one side's imports, caches and freed-but-kept memory never flatter or
burden the other. In it, the set-up (imports, data, servers) runs first and is not
measured; then the high-water mark of resident memory is reset (Linux:
`/proc/self/clear_refs`), the operation runs once, and we record its wall time
(`perf_counter`) and its peak RSS minus the RSS just before it: the extra memory the
operation needed at its worst, native allocations (numpy, pyarrow, sklearn's
OpenMP code) included, which tracemalloc would miss. The operation runs `REPEATS`
times in the worker (after an untimed warm-up on a few rows); the median time and
the largest peak are reported, which damps the noise of a shared machine.
A side whose operation runs a whole child process reports that process's peak itself
(`PROCESS_PEAK` among its facts) and may run once (`Side.repeats`); a case whose
comparisons share servers or state defines `environment(sizes)`, a context manager the
parent enters once around them (`case_environment`).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from benchmarks import DATA_ENV, PROCESS_PEAK, REPEATS, WARM_UP, Comparison, Side, Sizes, data_dir, ratio

CASES = {
    "validation": "benchmarks.bench_validation",
    "drift": "benchmarks.bench_drift",
    "landing": "benchmarks.bench_landing",
    "training": "benchmarks.bench_training",
    "redaction": "benchmarks.bench_redaction",
    "parsing": "benchmarks.bench_parsing",
    "memory": "benchmarks.bench_memory",
    "loop": "benchmarks.bench_loop",
    "rescoring": "benchmarks.bench_rescoring",
    "topology": "benchmarks.bench_topology",
}
# Cases run only when named (`python -m benchmarks.run topology`) and merged into RESULTS.md by hand:
# they start the production topology (PostgreSQL and Redis must run) and take about 45 minutes.
SEPARATE = {"topology"}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
REPO = RESULTS.parent.parent
MARKER = "BENCH_RESULT "
PACKAGES = [
    "pandas",
    "numpy",
    "pyarrow",
    "great-expectations",
    "evidently",
    "scikit-learn",
    "boto3",
    "moto",
    "mlflow",
]
WORKER_TIMEOUT_S = 1200


def comparisons(cases: list[str], sizes: Sizes) -> list[Comparison]:
    found: list[Comparison] = []
    for case in cases:
        found += importlib.import_module(CASES[case]).comparisons(sizes)
    return found


def case_environment(case: str, sizes: Sizes) -> AbstractContextManager:
    """The servers and state a case's comparisons share (its module's `environment`), or nothing."""
    environment = getattr(importlib.import_module(CASES[case]), "environment", None)
    return environment(sizes) if environment else nullcontext()


# --- inside a worker -------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's resident-memory high-water mark (Linux 4.0+); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def measure(side: Side) -> dict:
    """Set up `side`, then time its operation once and take its peak extra memory (see the module doc)."""
    module_name, _, function = side.target.partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    times, peaks = [], []
    with factory(**side.kwargs) as operation:
        for _ in range(side.repeats):
            gc.collect()
            before = _status_kb("VmRSS")
            peak_known = _reset_peak()
            start = time.perf_counter()
            facts = operation() or {}
            times.append(time.perf_counter() - start)
            peak = _status_kb("VmHWM") if peak_known else None
            if PROCESS_PEAK in facts:  # the operation measured a whole child process: that is the peak
                peaks.append(facts.pop(PROCESS_PEAK))
            elif peak is not None and before is not None:
                peaks.append((peak - before) / 1024)
    return {
        "seconds": statistics.median(times),
        "times": [round(t, 3) for t in times],
        "peak_mb": max(peaks) if peaks else None,
        "peaks": [round(p) for p in peaks],
        "facts": facts,
    }


def _worker(payload: str) -> None:
    side = Side(**json.loads(payload))
    result = measure(side)
    print(MARKER + json.dumps(result, default=str), flush=True)


# --- in the parent ---------------------------------------------------------------------------


def run_side(side: Side) -> dict:
    """`measure(side)` in a fresh interpreter; {"error": ...} when the worker fails."""
    payload = json.dumps({"label": side.label, "target": side.target, "kwargs": side.kwargs, "repeats": side.repeats})
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.run", "--worker", payload],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=side.timeout_s or WORKER_TIMEOUT_S,
            env={**os.environ, "GX_ANALYTICS_ENABLED": "false", "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {side.timeout_s or WORKER_TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"worker exit {done.returncode}: {tail[0][:300]}"}
    result = json.loads(lines[-1][len(MARKER) :])
    result["worker_s"] = time.perf_counter() - started
    result["rows"] = side.kwargs.get("rows", side.kwargs.get("train_rows"))
    return result


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    memory = next((line.split()[1] for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), None)
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(int(memory) / 1024 / 1024, 1) if memory else None,
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": os.environ.get("CONTINUUM_TRAIN_THREADS", "1 (default)"),
        "packages": versions,
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _row(comparison: Comparison, s: dict, r: dict) -> list[str]:
    if "error" in s or "error" in r:
        return [comparison.name, f"{comparison.rows:,}", "error", "error", "n/a", "", "", "n/a"]
    return [
        comparison.name,
        f"{comparison.rows:,}",
        _fmt(s["seconds"]),
        _fmt(r["seconds"]),
        _fmt(ratio(s, r)),
        _fmt(s["peak_mb"], 0),
        _fmt(r["peak_mb"], 0),
        _fmt(ratio(s, r, "peak_mb")),
    ]


HEADER = [
    "comparison",
    "rows",
    "Continuum s",
    "reference s",
    "time ratio",
    "Continuum MB",
    "reference MB",
    "memory ratio",
]


def _meaning(comparison: Comparison, s: dict, r: dict) -> str:
    if "error" in s or "error" in r:
        return f"Not measured: {s.get('error') or r.get('error')}."
    try:
        return comparison.meaning(s, r)
    except Exception as exc:  # a broken sentence must not lose the numbers
        return f"(no interpretation: {type(exc).__name__}: {exc})"


def print_table(results: list[tuple[Comparison, dict, dict]]) -> None:
    rows = [HEADER] + [_row(c, s, r) for c, s, r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def report(results: list[tuple[Comparison, dict, dict]], info: dict, sizes: Sizes, total_s: float) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m benchmarks.run`); do not edit by hand. Each comparison puts",
        "Continuum's real code path next to a reference doing the same work, measured in the same run.",
        "Ratio = Continuum / reference: above 1 means Continuum takes more time or memory.",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; whole run {total_s / 60:.1f} min",
        f"- machine: {info['nproc']} cores ({info['cpu']}), {info['memory_gb']} GB RAM, "
        f"load average at start {info['load_average']}; {info['platform']}",
        f"- python {info['python']}; {packages}",
        f"- training threads (CONTINUUM_TRAIN_THREADS): {info['threads']}",
        "",
        "Method: every side runs in a fresh subprocess; set-up (imports, data, servers, a warm-up on",
        f"{WARM_UP} rows) is not measured. Each operation then runs {REPEATS} times: time is the median wall",
        "time, memory the largest peak. Memory is the operation's peak resident memory",
        "minus the resident memory just before it (the high-water mark is reset through",
        "`/proc/self/clear_refs`), so native allocations count too. The data is",
        f"`continuum.simulate.generate('insurance_claim_risk', seed=1)`; sizes: {sizes}.",
        "Other jobs shared this machine during the run: compare ratios, not absolute seconds.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(_row(c, s, r)) + " |" for c, s, r in results]
    lines.append("")
    for comparison, s, r in results:
        lines += [f"## {comparison.name}", ""]
        lines.append(f"- Continuum: `{comparison.subject.label}`; reference: `{comparison.reference.label}`")
        if comparison.notes:
            lines.append(f"- {comparison.notes}")
        for label, result in (("Continuum", s), ("reference", r)):
            if "facts" in result:
                facts = ", ".join(f"{k}={v}" for k, v in result["facts"].items())
                times = ", ".join(f"{t:.2f}" for t in result["times"])
                lines.append(
                    f"- {label}: {facts}; times {times} s; worker {result['worker_s']:.0f} s with set-up"
                )
        lines += ["", _meaning(comparison, s, r), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", metavar="case", help=f"any of {', '.join(CASES)} (default: all but {', '.join(sorted(SEPARATE))})")
    parser.add_argument("--tiny", type=int, metavar="N", help="every size set to N rows (a smoke run)")
    parser.add_argument("--output", type=Path, help="where to write the report (default: RESULTS.md)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0

    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    cases = args.cases or [case for case in CASES if case not in SEPARATE]
    own_data = not os.environ.get(DATA_ENV)  # a temporary directory we make, and remove at the end
    sizes = Sizes.tiny(args.tiny) if args.tiny else Sizes()
    output = args.output or (None if args.tiny else RESULTS)
    info = machine()
    print(
        f"benchmarks: cases={','.join(cases)} data={data_dir()} nproc={info['nproc']} load={info['load_average']}"
    )
    started = time.perf_counter()
    results = []
    for case in cases:
        with ExitStack() as stack:
            try:
                stack.enter_context(case_environment(case, sizes))
                failed_setup = None
            except Exception as exc:  # the case's rows say so; the other cases' rows are kept
                failed_setup = {"error": f"set-up of {case} failed: {type(exc).__name__}: {str(exc)[:300]}"}
            for comparison in comparisons([case], sizes):
                print(f"-> {comparison.name} ({comparison.rows:,} rows)", flush=True)
                if failed_setup:
                    s = r = failed_setup
                else:
                    s, r = run_side(comparison.subject), run_side(comparison.reference)
                results.append((comparison, s, r))
                print("   " + _meaning(comparison, s, r), flush=True)
    total = time.perf_counter() - started
    if own_data:
        shutil.rmtree(data_dir(), ignore_errors=True)
    print()
    print_table(results)
    if output:
        output.write_text(report(results, info, sizes, total))
        print(f"\nwrote {output} ({total / 60:.1f} min)")
    failed = [c.name for c, s, r in results if "error" in s or "error" in r]
    if failed:
        print(f"benchmarks: {len(failed)} comparison(s) failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
