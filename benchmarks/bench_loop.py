"""The loop's orchestration overhead: one batch through the real DAGs against the same functions in a script.

Continuum's side is what `continuum ingest FILE --run` does: land the file, then
`<domain>_land` and `<domain>_decide` parsed from dags/ and run with `dag.test()`
(Airflow's task runner, XComs, the in-process execution API, the metadata database).
The reference calls the very library functions those tasks call, in the same order
and with the same lease renewals, from a plain script. Both sides take a first batch of
a fresh domain, so every step does its work: land, validate, monitor, train, bless,
promote and score. The ratio is what Airflow adds around the work.

Each timed run uses a domain of its own (a copy of insurance_claim_risk), so the three
repeats are three first models, not a first model and two stable batches. The services
(moto S3, a SQLite MLflow store, a SQLite Airflow database) run in the worker, as in the
scenario tests; this module must run in a benchmark worker (a fresh interpreter), since
it points Airflow's configuration at its own home before Airflow is imported.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from benchmarks import (
    DOMAIN,
    REPEATS,
    Comparison,
    Side,
    Sizes,
    data_dir,
    free_port,
    insurance_csv,
    ratio,
    times,
)

WARM_UP_ROWS = 2000  # enough labelled rows for a first model; the warm-up run is not timed
HOLDER = "bench-plain-script"  # the reference's lease holder, as a run id is the DAG's


def _names() -> list[str]:
    return ["loop_bench_warm_up", *(f"loop_bench_{i}" for i in range(REPEATS))]


def _environment(home: Path) -> dict[str, str]:
    """What tests/conftest.py sets for `dag.test()`: every service local, nothing from the user's Airflow."""
    repo = Path(__file__).resolve().parents[1]
    return {
        "CONTINUUM_HOME": str(home / "home"),
        "CONTINUUM_DOMAINS_PATH": str(home / "specs"),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CONTINUUM_BUCKET": "continuum",
        "CONTINUUM_MLFLOW_BUCKET": "continuum-mlflow",
        "CONTINUUM_MLFLOW_ARTIFACTS": "s3://continuum-mlflow/",
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        "GIT_PYTHON_REFRESH": "quiet",
        "OMP_NUM_THREADS": "1",
    }


def _write_specs(directory: Path) -> None:
    import yaml

    from continuum.specs import BUILTIN_DOMAINS_DIR

    directory.mkdir(parents=True, exist_ok=True)
    document = yaml.safe_load((BUILTIN_DOMAINS_DIR / f"{DOMAIN}.yaml").read_text())
    for name in _names():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump({**document, "name": name}))


@contextmanager
def _services(rows: int):
    """Moto S3, MLflow and Airflow's database of this worker; yields (warm-up file, timed file)."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="loop-", dir=data_dir()))
    os.environ.update(_environment(home))
    _write_specs(home / "specs")
    from moto.server import ThreadedMotoServer

    from continuum import storage
    from continuum.local.s3server import serialise_conditional_writes

    serialise_conditional_writes()  # the decision lease's conditional writes are atomic, as on AWS
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = os.environ["MLFLOW_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    storage.client.cache_clear()
    for bucket in ("continuum", "continuum-mlflow"):
        storage.ensure_bucket(bucket)
    from airflow.utils import db

    from continuum.local import airflow_settings
    from continuum.settings import REPO_ROOT

    (home / "airflow").mkdir(parents=True, exist_ok=True)
    db.initdb()
    airflow_settings.apply(airflow_settings.load(REPO_ROOT / "airflow_settings.yaml"))
    files = {}
    for label, size in (("warm_up", WARM_UP_ROWS), ("timed", rows)):
        files[label] = home / f"{label}.csv"
        files[label].write_bytes(insurance_csv(size))
    try:
        yield files["warm_up"], files["timed"]
    finally:
        server.stop()


@contextmanager
def _first_batches(rows: int, decide):
    """`decide(domain, file)` once untimed (warm-up), then the callable to time: each call a new domain."""
    with _services(rows) as (warm_up, timed):
        names = _names()
        decide(names.pop(0), warm_up)
        yield lambda: decide(names.pop(0), timed)


def _facts(domain: str, batch_id: str) -> dict:
    from continuum import decision

    record = decision.load(domain, batch_id)
    return {
        "finished": record.finished,
        "promoted": record.promoted,
        "steps": ",".join(record.steps),
        "champion": record.champion.version if record.champion else None,
    }


@contextmanager
def through_dags(rows: int):
    """`continuum ingest FILE --run`: land, then the real land and decide DAGs with `dag.test()`."""
    import contextlib
    import io

    from continuum import cli, storage

    def ingest(domain: str, path: Path) -> dict:
        with contextlib.redirect_stdout(io.StringIO()):  # ingest prints the landed URI; the record is the facts
            record = cli.ingest(domain, path, run=True)
        return _facts(domain, record["batch_id"]) | {"batch_id": storage.batch_id_for(path.read_bytes())}

    with _first_batches(rows, ingest) as run:
        yield run


@contextmanager
def plain_script(rows: int):
    """The same steps as the DAG tasks call them, one after another in this process."""
    from continuum import landing, lease, pipeline

    def decide(domain: str, path: Path) -> dict:
        landing.land_file(domain, str(path), path.read_bytes())
        [batch_id] = landing.register_landed(domain)
        assert pipeline.claim_next(domain, HOLDER) == batch_id
        for step in (pipeline.run_gate, pipeline.run_monitor, pipeline.run_training, pipeline.run_promotion,
                     pipeline.run_scoring):
            lease.acquire(domain, HOLDER, batch_id)  # every DAG task renews the lease first
            step(domain, batch_id)
        lease.release(domain, HOLDER)
        return _facts(domain, batch_id) | {"batch_id": batch_id}

    with _first_batches(rows, decide) as run:
        yield run


def _meaning(s: dict, r: dict) -> str:
    value = ratio(s, r)
    verdict = "meets" if value is not None and value <= 1.5 else "misses"
    return (
        f"One batch through the real DAGs with dag.test() takes {times(value)} the time of the same library "
        f"functions called in a plain script ({s['seconds']:.1f} s vs {r['seconds']:.1f} s; both "
        f"{s['facts']['steps']}); the bar is at most 1.5x: it {verdict} it. The difference is Airflow's: "
        "parsing the domain's DAG file, creating the runs, the task runner and XComs per task."
    )


def comparisons(sizes: Sizes) -> list[Comparison]:
    rows = min(sizes.rows, 100_000)
    return [
        Comparison(
            case="loop",
            name="loop: real DAGs (dag.test) vs plain script",
            rows=rows,
            subject=Side("continuum ingest --run (land and decide DAGs)", "benchmarks.bench_loop:through_dags",
                         {"rows": rows}),
            reference=Side("pipeline functions in a script", "benchmarks.bench_loop:plain_script", {"rows": rows}),
            meaning=_meaning,
            notes="a fresh copy of insurance_claim_risk per timed run (a first model each time); moto S3, "
            "SQLite MLflow and SQLite Airflow database in the worker, on both sides",
        )
    ]
