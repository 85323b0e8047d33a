"""The production topology under load (issue #11): `make up-prod` with 30 generated domains, one batch each.

Run on its own (`python -m benchmarks.run topology`, about 45 min: at most 30 + 10 waiting) and merged into
RESULTS.md like the `memory:` rows. `environment` starts `continuum platform run
--production` once (Celery on PostgreSQL and Redis, two workers, databases and Redis keys
of its own) with `TOPOLOGY_DOMAINS` generated domains on `CONTINUUM_DOMAINS_PATH` (the
shipped domains run too) and waits until every DAG is parsed. Then:

- `topology`: one batch lands in every generated domain at once and every decision is
  awaited, against one batch of one shipped domain on the same platform afterwards. The
  facts are read from the Airflow metadata database for the measured window, per task id:
  queue wait (`start_date - queued_dttm`: waiting in Celery for a worker process), slot
  wait (`queued_dttm - scheduled_dttm`: ready, waiting for an executor or pool slot) and
  run time (`end_date - start_date`), median, p95 and max (`window_stats`). Beside them, what
  the per-domain `<domain>_land` DAGs (one run a minute each) cost in that window.
- `landing scan`: what one scanning landing DAG would do each minute instead: one
  `register_landed` + `pending` pass over every domain in one process, against the same
  pass for one domain, on the same S3 while the platform runs.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import Comparison, Side, Sizes, data_dir, free_port

TOPOLOGY_DOMAINS = 30
BATCH_ROWS = 500
ONE_DOMAIN = "insurance_claim_risk"  # shipped: not one of the 30, so its batch is decided on its own
DECISION_TIMEOUT_S = 1800.0  # a domain not decided by then is reported as not decided, not waited for
ONE_DECISION_TIMEOUT_S = 600.0  # the reference: one batch (about 3 min on an idle platform)
PLATFORM_ENV = "CONTINUUM_BENCH_TOPOLOGY"  # JSON handed to the sides: endpoints, database names, domains
LAND_TASKS = ("register_landed", "register_labels")


def comparisons(sizes: Sizes) -> list[Comparison]:
    here = "benchmarks.bench_topology"
    return [
        Comparison(
            "topology",
            f"topology: {TOPOLOGY_DOMAINS} domains' batches at once vs one batch (make up-prod)",
            TOPOLOGY_DOMAINS,
            Side(f"one batch in each of {TOPOLOGY_DOMAINS} generated domains, every decision",
                 f"{here}:all_domains", {"rows": BATCH_ROWS}, repeats=1, timeout_s=DECISION_TIMEOUT_S + 600),
            Side(f"one batch of {ONE_DOMAIN} alone", f"{here}:one_domain", {"rows": BATCH_ROWS}, repeats=1,
                 timeout_s=DECISION_TIMEOUT_S + 600),
            _topology_meaning,
            notes=f"CeleryExecutor, 2 workers x concurrency 2, PostgreSQL, Redis; {BATCH_ROWS} rows per batch; "
                  "first models (no champion yet), so every batch trains, promotes and scores",
        ),
        Comparison(
            "topology",
            f"landing scan: one pass over all domains vs one domain ({TOPOLOGY_DOMAINS} + shipped)",
            TOPOLOGY_DOMAINS,
            Side("register_landed + pending for every domain, one process", f"{here}:scan", {"every": True}),
            Side(f"register_landed + pending for {ONE_DOMAIN}", f"{here}:scan", {"every": False}),
            _scan_meaning,
            notes="the platform's S3 after the decisions (nothing new landed): the steady state of every minute",
        ),
    ]


# --- the platform, once around the case --------------------------------------------------------


def generate_domains(directory: Path) -> list[str]:
    from benchmarks.bench_parsing import generate_specs

    return generate_specs(TOPOLOGY_DOMAINS, directory)


def _env(home: Path, domains_dir: Path, suffix: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "AWS_", "CONTINUUM_"))}
    pg = "postgresql+psycopg2://postgres@127.0.0.1:5432"
    return keep | {
        "CONTINUUM_HOME": str(home),
        "CONTINUUM_DOMAINS_PATH": str(domains_dir),
        "CONTINUUM_SIMULATOR": "off",
        "CONTINUUM_CELERY_WORKERS": "2",
        "CONTINUUM_AIRFLOW_PORT": str(free_port()),
        "CONTINUUM_MLFLOW_PORT": str(free_port()),
        "CONTINUUM_S3_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{pg}/continuum_bench_airflow_{suffix}",
        "CONTINUUM_MLFLOW_BACKEND_URI": f"{pg}/continuum_bench_mlflow_{suffix}",
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/12",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"continuum_bench_{suffix}:",
    }


@contextmanager
def environment(sizes: Sizes):
    """The production platform with the generated domains, until every DAG is parsed; stopped after the case."""
    from continuum.local import state

    suffix = uuid.uuid4().hex[:8]
    base = data_dir() / f"topology-{suffix}"
    names = generate_domains(base / "domains")
    env = _env(base / "home", base / "domains", suffix)
    (base / "home").mkdir(parents=True)
    code = "from continuum.local.platform import run; raise SystemExit(run(production=True))"
    with open(base / "supervisor.out", "wb") as out:
        supervisor = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
    airflow_db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[1]
    try:
        while (state.running(base / "home") or {}).get("status") != "ready":
            if supervisor.poll() is not None:
                tail = (base / "supervisor.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the platform exited with {supervisor.returncode}: {tail}")
            time.sleep(2)
        wait_parsed(airflow_db, len(names))
        os.environ[PLATFORM_ENV] = json.dumps({"airflow_db": airflow_db, "domains": names, "home": str(base / "home")})
        for key in ("CONTINUUM_DOMAINS_PATH", "CONTINUUM_SIMULATOR"):
            os.environ[key] = env[key]
        os.environ |= {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{env['CONTINUUM_S3_PORT']}",
                       "AWS_ACCESS_KEY_ID": "continuum", "AWS_SECRET_ACCESS_KEY": "continuum",
                       "AWS_DEFAULT_REGION": "us-east-1"}
        yield
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGINT)  # Ctrl-C: the supervisor stops its components in order
            try:
                supervisor.wait(timeout=240)
            except subprocess.TimeoutExpired:
                os.killpg(supervisor.pid, signal.SIGKILL)
        drop_databases(airflow_db, env["CONTINUUM_MLFLOW_BACKEND_URI"].rsplit("/", 1)[1])


def wait_parsed(airflow_db: str, count: int, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query(airflow_db, "SELECT count(*) FROM dag WHERE dag_id LIKE 'gen%%' AND is_paused = false")
        if rows[0][0] >= 2 * count:
            return
        time.sleep(3)
    raise RuntimeError(f"the {2 * count} DAGs of the generated domains were not all parsed within {timeout:.0f}s")


def query(database: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def drop_databases(*names: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


# --- the sides -------------------------------------------------------------------------------


def batch(domain: str, rows: int, seed: int) -> bytes:
    """A batch of the shipped domain a generated one copies (`gen0007_insurance_fraud` -> insurance_fraud)."""
    from continuum import simulate

    base = domain.split("_", 1)[1] if domain.startswith("gen") else domain
    return simulate.generate(base, rows, seed=seed).to_csv(index=False).encode()


def land_and_decide(batches: dict[str, bytes], timeout_s: float) -> dict:
    """Land every batch at once, then wait for every decision record to be final (or the timeout)."""
    from continuum import decision, landing, storage

    started, ids = time.monotonic(), {}
    for domain, data in batches.items():
        landing.land_file(domain, f"{domain}-bench.csv", data)
        ids[domain] = storage.batch_id_for(data)
    decided: dict[str, float] = {}
    while len(decided) < len(ids) and time.monotonic() - started < timeout_s:
        for domain in sorted(set(ids) - set(decided)):
            record = decision.load(domain, ids[domain])
            if record.finished:
                decided[domain] = time.monotonic() - started
        time.sleep(5)
    return decided


def window_stats(airflow_db: str, start: datetime, end: datetime, decide_like: str) -> dict:
    """Per task id started in [start, end]: its waits and run time (median/p95/max), and the land DAGs' cost.

    Two waits, because they have different causes: `slot` (scheduled_dttm -> queued_dttm) is the
    wait for an executor slot (`[core] parallelism`) or a pool slot, while the task is ready;
    `queue` (queued_dttm -> start_date) is the wait in Celery for a free worker process.
    """
    rows = query(airflow_db, "SELECT dag_id, task_id, EXTRACT(EPOCH FROM queued_dttm - scheduled_dttm), "
                 "EXTRACT(EPOCH FROM start_date - queued_dttm), EXTRACT(EPOCH FROM end_date - start_date) "
                 "FROM task_instance WHERE start_date BETWEEN %s AND %s AND queued_dttm IS NOT NULL "
                 "AND scheduled_dttm IS NOT NULL AND end_date IS NOT NULL", (start, end))
    minutes = (end - start).total_seconds() / 60
    per_task: dict[str, list[tuple[float, float, float]]] = {}
    for dag_id, task_id, slot, queue, run in rows:
        if dag_id.endswith("_land") or (dag_id.endswith("_decide") and dag_id.startswith(decide_like)):
            per_task.setdefault(task_id, []).append((float(slot), float(queue), float(run)))
    everything = [v for values in per_task.values() for v in values]
    land = [v for task in LAND_TASKS for v in per_task.get(task, [])]
    land_runs = query(airflow_db, "SELECT count(*) FROM dag_run WHERE dag_id LIKE '%%\\_land' "
                      "AND start_date BETWEEN %s AND %s", (start, end))[0][0]
    return {
        "tasks": {task: _summary(values) for task, values in sorted(per_task.items())},
        "land_dag_runs_per_min": round(land_runs / minutes, 1),
        "land_tasks_per_min": round(len(land) / minutes, 1),
        "land_worker_s_per_min": round(sum(run for *_, run in land) / minutes, 1),
        "all_worker_s_per_min": round(sum(run for *_, run in everything) / minutes, 1),
        "land_share_of_queue_wait": _share(land, everything, 1),
        "land_share_of_slot_wait": _share(land, everything, 0),
        "window_min": round(minutes, 1),
    }


def _share(part: list[tuple], whole: list[tuple], index: int) -> float | None:
    total = sum(v[index] for v in whole)
    return round(sum(v[index] for v in part) / total, 3) if total else None


def _summary(values: list[tuple[float, float, float]]) -> str:
    slot, queue, run = (sorted(v[i] for v in values) for i in range(3))
    return (f"n {len(values)}; queue wait med {statistics.median(queue):.1f} p95 {_p95(queue):.1f} "
            f"max {queue[-1]:.1f} s; slot wait med {statistics.median(slot):.1f} p95 {_p95(slot):.1f} "
            f"max {slot[-1]:.1f} s; run med {statistics.median(run):.1f} p95 {_p95(run):.1f} s")


def _p95(values: list[float]) -> float:
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def _measured(domains: list[str], rows: int, decide_like: str, timeout_s: float):
    platform = json.loads(os.environ[PLATFORM_ENV])
    batches = {domain: batch(domain, rows, seed=index + 1) for index, domain in enumerate(domains)}

    def operation() -> dict:
        start = datetime.now(UTC)
        decided = land_and_decide(batches, timeout_s)
        end = datetime.now(UTC)
        times = sorted(decided.values())
        facts = {"decided": f"{len(decided)}/{len(domains)}", "waited_at_most_s": round(timeout_s),
                 "first_s": round(times[0]) if times else None,
                 "median_s": round(statistics.median(times)) if times else None,
                 "last_s": round(times[-1]) if times else None}
        stats = window_stats(platform["airflow_db"], start, end, decide_like)
        (Path(platform["home"]).parent / f"stats-{decide_like or 'all'}-{len(domains)}.json").write_text(
            json.dumps(facts | stats, indent=1))
        return facts | {k: v for k, v in stats.items() if k != "tasks"} | {
            f"task {task}": summary for task, summary in stats["tasks"].items()}

    return operation


@contextmanager
def all_domains(rows: int):
    yield _measured(json.loads(os.environ[PLATFORM_ENV])["domains"], rows, "gen", DECISION_TIMEOUT_S)


@contextmanager
def one_domain(rows: int):
    yield _measured([ONE_DOMAIN], rows, ONE_DOMAIN, ONE_DECISION_TIMEOUT_S)


@contextmanager
def scan(every: bool):
    """One landing pass (what `register_landed` does per domain) over every domain, or over one."""
    from continuum.batches import pending
    from continuum.landing import register_landed
    from continuum.specs import load_domains

    specs, _ = load_domains()
    domains = [s.name for s in specs] if every else [ONE_DOMAIN]
    for domain in domains[:1]:  # warm-up: the S3 client and its connection
        register_landed(domain)

    def operation() -> dict:
        waiting = 0
        for domain in domains:
            register_landed(domain)
            waiting += len(pending(domain))
        return {"domains": len(domains), "waiting": waiting}

    yield operation


# --- the sentences ---------------------------------------------------------------------------


def _topology_meaning(s: dict, r: dict) -> str:
    fs, fr = s["facts"], r["facts"]
    alone = (f"one batch of {ONE_DOMAIN} alone took {fr['last_s']} s afterwards" if fr["last_s"] is not None
             else f"one batch of {ONE_DOMAIN} alone was not decided within {fr['waited_at_most_s']} s afterwards")
    reached = (f"the first after {fs['first_s']} s, the median after {fs['median_s']} s and the last after "
               f"{fs['last_s']} s" if fs["last_s"] is not None else "none of them")
    return (f"With {TOPOLOGY_DOMAINS} domains' batches landed at once, {fs['decided']} reached their decision within "
            f"{fs['waited_at_most_s']} s ({reached}); {alone}. Meanwhile the land DAGs ran "
            f"{fs['land_dag_runs_per_min']} runs and {fs['land_tasks_per_min']} tasks per minute, "
            f"{fs['land_worker_s_per_min']} of the {fs['all_worker_s_per_min']} task-seconds per minute, and their "
            f"tasks account for {fs['land_share_of_queue_wait']:.0%} of all queue wait and "
            f"{fs['land_share_of_slot_wait']:.0%} of all slot wait.")


def _scan_meaning(s: dict, r: dict) -> str:
    per_domain = s["seconds"] / s["facts"]["domains"]
    return (f"One landing pass over all {s['facts']['domains']} domains in one process takes {s['seconds']:.2f} s "
            f"({per_domain * 1000:.0f} ms per domain), one domain's {r['seconds']:.2f} s: what one scanning landing "
            "DAG would spend per minute, in one task slot, instead of one task per domain.")
