"""Peak memory of whole task processes: gate, monitor, train and score on one landed batch.

The bar is about what a worker machine must hold, so each step runs as a fresh
interpreter that calls exactly the library function its `<domain>_decide` task calls
(`continuum.pipeline.run_gate`, `run_monitor`, `run_training`, `run_scoring`), and its
peak resident memory is the whole process's (`ru_maxrss` from `wait4`): imports, the
batch, the model and every native allocation. The reference of each step is a process
that imports the same modules and reads the same batch the step reads, then exits: the
ratio is what the step's own work adds to the floor every such process pays.

The comparisons share one environment (`environment`), entered once by the parent
(`benchmarks.run`): a moto S3 server in the parent (its objects live there, as S3 lives
outside a worker) and a SQLite MLflow store with artefacts in that S3. A first, smaller
batch is decided end to end (untimed), so a champion exists; then a batch of `rows`
rows with covariate drift is landed, so the monitor compares it with the champion's
reference and asks for a retrain, and the train step fits a challenger on it.
Promotion runs between train and score, untimed. Each step runs once: a step is done
once per batch (a second run returns what the decision record says).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks import (
    DOMAIN,
    PROCESS_PEAK,
    SEED,
    Comparison,
    Side,
    Sizes,
    data_dir,
    environ,
    free_port,
    ratio,
    times,
)

REPO = Path(__file__).resolve().parents[1]
BAR_MB = 4096
BATCH_ENV = "CONTINUUM_BENCH_MEMORY_BATCH"  # the measured batch's id, handed to the sides' processes
DRIFT = 0.5  # covariate drift of the measured batch: enough for the monitor to ask for a retrain
STEPS = {  # step -> (the function its Airflow task calls, the modules that function imports)
    "gate": ("run_gate", ["continuum.alerts", "continuum.validation", "continuum.registry"]),
    "monitor": ("run_monitor", ["continuum.monitoring", "continuum.registry", "continuum.tracking"]),
    "train": ("run_training", ["continuum.registry", "continuum.training", "continuum.blessing"]),
    "score": ("run_scoring", ["continuum.performance_estimate", "continuum.registry", "continuum.scoring"]),
}
WHY = {  # what allocates, for the sentence of a step whose peak is well above its floor
    "gate": "GX's typed copy of the text frame and its per-expectation metric computations",
    "monitor": "the champion's predictions on the whole batch for its metric, beside the sampled drift check",
    "train": "the window's frame, its encoded copy and the boosting's histograms, then the holdout predictions",
    "score": "the reason codes: one prediction of the whole batch per input feature",
}
STEP_CODE = """
import json, sys
from continuum import pipeline
print(json.dumps(getattr(pipeline, sys.argv[1])(sys.argv[2], sys.argv[3]), default=str))
"""
READ_CODE = """
import importlib, json, sys
from continuum import pipeline, storage
from continuum.storage import Keys
domain, step, batch_id, modules = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for name in modules:
    importlib.import_module(name)
keys = Keys(domain)
if step == "gate":  # the gate reads the raw landed bytes as text, with GX loaded
    from continuum.validation import read_batch
    from continuum.validation.suite import import_gx
    import_gx()
    manifest = storage.get_json(keys.manifest(batch_id))
    frame = read_batch(storage.get_bytes(manifest["raw_key"]), manifest.get("extension") or ".csv")
else:
    frame = storage.get_frame(keys.validated(batch_id))
print(json.dumps({"rows": len(frame)}))
"""
STORY_CODE = """
import json, sys
from benchmarks.bench_memory import story
print(json.dumps(story(int(sys.argv[1]), int(sys.argv[2]))))
"""


def first_rows(rows: int) -> int:
    """The champion's batch: small enough to be cheap, large enough to train on."""
    return max(min(rows // 20, 50_000), 1000)


def run_process(code: str, *args: str) -> dict:
    """`python -c code args` in a fresh interpreter: wall time, whole-process peak RSS (MB), last stdout line."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=out,
            stderr=err,
            cwd=REPO,  # `benchmarks` importable for the set-up process
            env={**os.environ, "GX_ANALYTICS_ENABLED": "false", "PYTHONWARNINGS": "ignore"},
        )
        _, status, usage = os.wait4(child.pid, 0)  # files, not pipes: nothing can block the child
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
        out.seek(0), err.seek(0)
        lines, errors = out.read().strip().splitlines(), err.read().strip().splitlines()
    if child.returncode != 0:
        raise RuntimeError(f"python -c ... {' '.join(args[:2])}: exit {child.returncode}: {(errors or ['?'])[-1][:300]}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "out": lines[-1] if lines else ""}  # KiB on Linux


def story(rows: int, seed: int) -> dict:
    """Untimed set-up in its own process: decide a first batch (the champion), then land the measured one."""
    from continuum import decision, landing, pipeline, simulate

    def land(frame, name: str) -> str:
        return landing.register(DOMAIN, landing.land_file(DOMAIN, name, frame.to_csv(index=False).encode()))

    first = land(simulate.generate(DOMAIN, n=first_rows(rows), seed=seed), "first.csv")
    for step in ("run_gate", "run_monitor", "run_training", "run_promotion", "run_scoring"):
        getattr(pipeline, step)(DOMAIN, first)
    champion = decision.load(DOMAIN, first).champion
    measured = land(simulate.generate(DOMAIN, n=rows, seed=seed + 1, drift=DRIFT), f"claims_{rows}.csv")
    return {"first": first, "champion": champion.version if champion else None, "batch_id": measured}


@contextmanager
def environment(sizes: Sizes):
    """moto S3 (in this process) and a SQLite MLflow store, a champion, and the landed batch of `sizes.rows`."""
    from moto.server import ThreadedMotoServer

    from continuum.local.s3server import serialise_conditional_writes

    serialise_conditional_writes()  # as tests/conftest.py: atomic conditional writes, as on AWS
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not one log line per S3 request
    home = Path(tempfile.mkdtemp(prefix="memory-", dir=data_dir()))
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    changed = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "CONTINUUM_BUCKET": "continuum-bench",
        "CONTINUUM_MLFLOW_BUCKET": "continuum-bench-mlflow",
        "CONTINUUM_MLFLOW_ARTIFACTS": "s3://continuum-bench-mlflow/",
        "CONTINUUM_HOME": str(home / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    try:
        with environ(changed, also=(BATCH_ENV,)):
            import boto3

            s3 = boto3.client("s3", endpoint_url=endpoint)
            for bucket in (changed["CONTINUUM_BUCKET"], changed["CONTINUUM_MLFLOW_BUCKET"]):
                s3.create_bucket(Bucket=bucket)
            facts = json.loads(run_process(STORY_CODE, str(sizes.rows), str(SEED))["out"])
            if facts["batch_id"] is None or facts["champion"] is None:
                raise RuntimeError(f"memory bench set-up: no champion or no new batch ({facts})")
            os.environ[BATCH_ENV] = facts["batch_id"]
            yield facts
    finally:
        server.stop()


@contextmanager
def step_process(rows: int, step: str):
    """The step's library function in a fresh interpreter, on the environment's batch."""
    function, _ = STEPS[step]
    batch_id = os.environ[BATCH_ENV]

    def run() -> dict:
        done = run_process(STEP_CODE, function, DOMAIN, batch_id)
        outcome = json.loads(done["out"])
        facts = {PROCESS_PEAK: done["peak_mb"], "batch_id": batch_id}
        if step == "train":
            facts["trained"] = outcome.get("trained")
        elif step == "monitor":
            facts["retrain"] = outcome.get("retrain")
        elif step == "gate":
            facts["quarantined"] = outcome.get("quarantined")
        return facts

    if step == "score":  # promotion comes between train and score in the DAG: untimed, its own process
        run_process(STEP_CODE, "run_promotion", DOMAIN, batch_id)
    yield run


@contextmanager
def read_process(rows: int, step: str):
    """The floor of the step's process: its imports and the batch it reads, nothing else."""
    _, modules = STEPS[step]
    batch_id = os.environ[BATCH_ENV]

    def run() -> dict:
        done = run_process(READ_CODE, DOMAIN, step, batch_id, *modules)
        return {PROCESS_PEAK: done["peak_mb"], "batch_id": batch_id, "rows": json.loads(done["out"])["rows"]}

    yield run


def _meaning(step: str):
    def sentence(s: dict, r: dict) -> str:
        peak, floor = s["peak_mb"], r["peak_mb"]
        verdict = f"under the {BAR_MB} MB bar: met" if peak < BAR_MB else f"over the {BAR_MB} MB bar: MISSED"
        facts = "".join(f", {k}={v}" for k, v in s["facts"].items() if k != "batch_id")
        return (
            f"The {step} task process peaks at {peak:.0f} MB, {verdict}{facts}; {times(ratio(s, r, 'peak_mb'), 1)} "
            f"the {floor:.0f} MB of a process that only imports its modules and reads the batch "
            f"({r['facts']['rows']:,} rows); the step's own work adds the rest, by its code path mostly "
            f"{WHY[step]} (not broken down by allocation here)."
        )

    return sentence


def comparisons(sizes: Sizes) -> list[Comparison]:
    found = []
    for step, (function, modules) in STEPS.items():  # in the DAG's order: each step needs the one before
        kwargs = {"rows": sizes.rows, "step": step}
        found.append(
            Comparison(
                case="memory",
                name=f"memory: {step} task process vs import-and-read process",
                rows=sizes.rows,
                subject=Side(f"continuum.pipeline.{function}", "benchmarks.bench_memory:step_process", kwargs, 1),
                reference=Side(
                    f"import {', '.join(modules)}; read the batch",
                    "benchmarks.bench_memory:read_process",
                    kwargs,
                    1,
                ),
                meaning=_meaning(step),
                notes=(
                    f"bar: under {BAR_MB} MB. Whole-process peak RSS (`ru_maxrss` of the child from `wait4`), "
                    "imports included, of a bare interpreter calling the library function (an Airflow task "
                    "process adds the task SDK's imports); run once. Time columns: the whole process, imports "
                    f"included. The batch has covariate drift {DRIFT}; the champion came from a first batch of "
                    f"{first_rows(sizes.rows):,} rows; the promote step runs untimed before the score side."
                ),
            )
        )
    return found
