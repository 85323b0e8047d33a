"""The real platform (`make run`): starts, serves Airflow, MLflow and S3, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import airflow_ui
import boto3
import pytest

from continuum import settings
from continuum.local import environment, state

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
REQUIRE_SERVICES = os.environ.get("CONTINUUM_REQUIRE_SERVICES") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def platform_env(home: Path, **extra: str) -> dict[str, str]:
    """The user's shell without the test session's endpoints, on free ports (a `make run` may be up)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MLFLOW_", "AWS_", "CONTINUUM_"))}
    env |= {
        "CONTINUUM_HOME": str(home),
        "CONTINUUM_AIRFLOW_PORT": str(free_port()),
        "CONTINUUM_MLFLOW_PORT": str(free_port()),
        "CONTINUUM_S3_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    return env | extra


def start(env: dict[str, str], production: bool = False) -> subprocess.Popen:
    code = f"from continuum.local.platform import run; raise SystemExit(run(production={production}))"
    Path(env["CONTINUUM_HOME"]).mkdir(parents=True, exist_ok=True)
    with open(Path(env["CONTINUUM_HOME"]) / "supervisor.out", "wb") as log:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_ready(supervisor: subprocess.Popen, home: Path) -> dict:
    """Until platform.json says ready; fails with the supervisor's output if it exits first."""
    while True:
        current = state.running(home)
        if current and current.get("status") == "ready":
            return current
        if supervisor.poll() is not None:
            output = (home / "supervisor.out").read_text(errors="replace")[-4000:]
            pytest.fail(f"the platform exited with {supervisor.returncode} before it was ready:\n{output}")
        time.sleep(1)


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"{}")


def stop_and_check(supervisor: subprocess.Popen, home: Path, children: dict[str, int]) -> None:
    supervisor.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal delivers to the supervisor
    assert supervisor.wait(timeout=180) == 0, (home / "supervisor.out").read_text(errors="replace")[-4000:]
    assert not state.path(home).exists()
    for name, pid in children.items():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # nothing left in the component's process group
        assert name


def check_airflow(env: dict[str, str], login: tuple[str, str] = ("admin", "admin")) -> str:
    """Health, login, pools and DAGs of the running Airflow; returns the API token."""
    base = f"http://127.0.0.1:{env['CONTINUUM_AIRFLOW_PORT']}"
    status, health = http("GET", f"{base}/api/v2/monitor/health")
    assert status == 200 and health["metadatabase"]["status"] == "healthy"
    status, answer = http("POST", f"{base}/auth/token", {"username": login[0], "password": login[1]})
    token = answer["access_token"]
    status, pools = http("GET", f"{base}/api/v2/pools", token=token)
    assert {"continuum_training", "continuum_validation"} <= {p["name"] for p in pools["pools"]}
    if not list(settings.dags_dir().glob("*.py")):
        assert http("GET", f"{base}/api/v2/dags", token=token)[0] == 200
        return token
    while True:  # parsing happens after readiness; DAGs or import errors show up within the refresh interval
        dags = http("GET", f"{base}/api/v2/dags", token=token)[1]
        errors = http("GET", f"{base}/api/v2/importErrors", token=token)[1]
        if dags["total_entries"] or errors["total_entries"]:
            break
        time.sleep(2)
    assert dags["total_entries"] > 0, f"no DAG listed; import errors: {errors['import_errors']}"
    assert not any(d["is_paused"] for d in dags["dags"])
    return token


def check_mlflow_and_s3(env: dict[str, str], home: Path) -> None:
    mlflow = f"http://127.0.0.1:{env['CONTINUUM_MLFLOW_PORT']}"
    assert urllib.request.urlopen(f"{mlflow}/health", timeout=30).status == 200
    status, created = http("POST", f"{mlflow}/api/2.0/mlflow/experiments/create", {"name": f"smoke-{uuid.uuid4().hex}"})
    experiment = http("GET", f"{mlflow}/api/2.0/mlflow/experiments/get?experiment_id={created['experiment_id']}")[1]
    assert experiment["experiment"]["artifact_location"].startswith(f"s3://{settings.mlflow_bucket()}/")
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{env['CONTINUUM_S3_PORT']}", region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
    s3.put_object(Bucket=settings.bucket(), Key="landing/smoke/batch.csv", Body=b"a\n1\n")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """One embedded platform (`make run`) for the tests below, started once: starting it costs minutes.

    The simulator is off, so nothing but the tests lands batches (its DAG is the only one missing).
    """
    home = tmp_path_factory.mktemp("embedded") / "home"
    env = platform_env(home, CONTINUUM_SIMULATOR="off")
    platform = SimpleNamespace(env=env, home=home, supervisor=start(env), running={})
    try:
        platform.running = wait_ready(platform.supervisor, home)
        yield platform
    finally:
        if platform.supervisor.poll() is None:  # the stop test did not run, or failed half way
            platform.supervisor.send_signal(signal.SIGINT)
            try:
                platform.supervisor.wait(timeout=180)
            except subprocess.TimeoutExpired:
                os.killpg(platform.supervisor.pid, signal.SIGKILL)


def test_embedded_platform_serves_airflow_mlflow_s3_and_the_continuum_page(embedded):
    assert embedded.running["mode"] == "embedded"
    assert set(embedded.running["children"]) == {"s3", "mlflow", "api-server", "scheduler", "dag-processor", "triggerer"}
    token = check_airflow(embedded.env)
    check_mlflow_and_s3(embedded.env, embedded.home)
    airflow_ui.check_plugin(f"http://127.0.0.1:{embedded.env['CONTINUUM_AIRFLOW_PORT']}", token)


def dag_task_ids(base: str, token: str, dag_id: str) -> list[str]:
    """The DAG's task ids as the REST API lists them, sorted."""
    return sorted(t["task_id"] for t in http("GET", f"{base}/api/v2/dags/{dag_id}/tasks", token=token)[1]["tasks"])


def test_the_airflow_ui_and_the_continuum_page_in_chromium(embedded, tmp_path):
    """Log in as admin, every Continuum DAG with its tags, a finished run's graph, the Continuum page."""
    chromium = airflow_ui.chromium_or_skip()
    base = f"http://127.0.0.1:{embedded.env['CONTINUUM_AIRFLOW_PORT']}"
    token = http("POST", f"{base}/auth/token", {"username": "admin", "password": "admin"})[1]["access_token"]
    dag_id = "insurance_claim_risk_land"
    while not http("GET", f"{base}/api/v2/dags/{dag_id}/dagRuns?state=success&limit=1", token=token)[1]["dag_runs"]:
        time.sleep(3)  # it runs every minute from the start
    run_id = airflow_ui.last_finished_run(base, token, dag_id)
    with airflow_ui.browser_page(chromium) as page:
        frame, nodes = airflow_ui.browse(page, base, token, environment.ADMIN_LOGIN,
                                         airflow_ui.Artifacts(tmp_path, "embedded"), (dag_id, run_id))
        assert sorted(nodes) == dag_task_ids(base, token, dag_id)  # the Graph shows every task of the DAG
        assert "register_landed" in nodes
        card = frame.locator("#domain-insurance_claim_risk")
        assert "No decision yet" in card.inner_text() and "champion" in card.inner_text()


def test_embedded_platform_stops_on_ctrl_c_and_keeps_what_landed(embedded):
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{embedded.env['CONTINUUM_S3_PORT']}", region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
    s3.put_object(Bucket=settings.bucket(), Key="landing/smoke/kept.csv", Body=b"a\n1\n")
    stop_and_check(embedded.supervisor, embedded.home, embedded.running.get("children", {}))
    # the final snapshot on stop kept what landed
    assert (embedded.home / "s3" / settings.bucket() / "landing" / "smoke" / "kept.csv").read_bytes() == b"a\n1\n"


def services_reachable() -> str | None:
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            return f"{name} is not reachable on 127.0.0.1:{port}"
    return None


def celery_tasks_per_worker(env: dict[str, str]) -> dict[str, int]:
    """How many tasks each Celery worker has executed, from the workers themselves (`celery inspect stats`)."""
    app = "airflow.providers.celery.executors.celery_executor.app"
    result = subprocess.run([str(Path(sys.executable).parent / "celery"), "--app", app, "inspect", "stats", "--json"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    return {worker: sum((data.get("total") or {}).values()) for worker, data in stats.items()}


def production_env(home: Path, airflow_db: str, mlflow_db: str, login: tuple[str, str]) -> dict[str, str]:
    return platform_env(
        home,
        # A killed worker's task is retried after 30 s without heartbeat (production: 120 s), 5 s later.
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="30",
        CONTINUUM_RETRY_DELAY_SECONDS="5",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{airflow_db}",
        CONTINUUM_MLFLOW_BACKEND_URI=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{mlflow_db}",
        AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:6379/11",
        # Keys of its own on the shared Redis, as the databases have names of their own: another
        # engineer's run of this test must not take this one's tasks.
        AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX=f"{airflow_db}:",
        CONTINUUM_CELERY_WORKERS="2",
        _AIRFLOW_WWW_USER_USERNAME=login[0],
        _AIRFLOW_WWW_USER_PASSWORD=login[1],
    )


def land(env: dict[str, str], monkeypatch, domain: str, data: bytes, name: str = "prod-test") -> str:
    """Land a batch in the platform's S3; returns its batch id."""
    from continuum import landing, storage

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{env['CONTINUUM_S3_PORT']}")
    storage.client.cache_clear()
    landing.land_file(domain, f"{domain}-{name}.csv", data)
    return storage.batch_id_for(data)


def land_and_wait_for_decision(env: dict[str, str], monkeypatch, domain: str, data: bytes) -> dict:
    """Land a batch in the platform's S3 and wait, without triggering anything, until its record is final."""
    return wait_for_decision(domain, land(env, monkeypatch, domain, data))


def wait_for_decision(domain: str, batch_id: str) -> dict:
    """The batch's decision record once its last step wrote (the platform's S3 must be AWS_ENDPOINT_URL)."""
    from continuum import decision, storage

    while True:  # the land DAG polls every minute; the other DAGs follow by Assets
        record = decision.load(domain, batch_id)
        if record.quarantined or record.scores or "scoring" in record.extra:  # the last step wrote
            storage.client.cache_clear()
            return record.model_dump(mode="json")
        time.sleep(5)


def trigger_and_follow(env: dict[str, str], token: str, dag_id: str) -> str:
    """Trigger a DAG run and follow it to its end with the official REST API client."""
    import airflow_client.client as client

    configuration = client.Configuration(host=f"http://127.0.0.1:{env['CONTINUUM_AIRFLOW_PORT']}", access_token=token)
    with client.ApiClient(configuration) as api:
        runs = client.DagRunApi(api)
        run = runs.trigger_dag_run(dag_id, client.TriggerDAGRunPostBody(logical_date=None, conf={}))
        while (state := runs.get_dag_run(dag_id, run.dag_run_id).state.value) not in ("success", "failed"):
            time.sleep(3)
    return state


@pytest.mark.services
@pytest.mark.timeout(1260)
def test_production_topology_runs_a_domain_loop_on_two_celery_workers(tmp_path, monkeypatch):
    """`make up-prod`: Celery on PostgreSQL and Redis, FAB login, MLflow on its own database; a second
    batch is still decided, once, after the worker running its `train` is killed."""
    missing = services_reachable()
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"{missing} and CONTINUUM_REQUIRE_SERVICES=1")
        pytest.skip(f"{missing}; start it or run without the production topology test")
    import psycopg2

    suffix = uuid.uuid4().hex[:8]
    airflow_db, mlflow_db = f"continuum_test_airflow_{suffix}", f"continuum_test_mlflow_{suffix}"
    login = ("ops_admin", f"pw-{uuid.uuid4().hex}")
    home = tmp_path / "home"
    env = production_env(home, airflow_db, mlflow_db, login)
    domain = "insurance_claim_risk"
    data = (settings.REPO_ROOT / "tests" / "data" / f"{domain}_valid.csv").read_bytes()
    supervisor, running = start(env, production=True), {}
    try:
        running = wait_ready(supervisor, home)
        assert running["mode"] == "production"
        assert {"celery-worker-1", "celery-worker-2"} <= set(running["children"])
        base = f"http://127.0.0.1:{env['CONTINUUM_AIRFLOW_PORT']}"
        with pytest.raises(urllib.error.HTTPError) as refused:  # FAB checks the password: a wrong one is refused
            http("POST", f"{base}/auth/token", {"username": login[0], "password": "wrong"})
        assert refused.value.code in (400, 401)
        token = check_airflow(env, login)
        check_mlflow_and_s3(env, home)

        record = land_and_wait_for_decision(env, monkeypatch, domain, data)
        # trained, registered and judged on the workers (whether it beats the floor is the data's business)
        assert not record["quarantined"] and record["retrain"]["triggered"] and record["challenger"]["version"], record
        assert trigger_and_follow(env, token, f"{domain}_land") == "success"
        per_worker = celery_tasks_per_worker(env)
        assert len(per_worker) == 2 and all(count > 0 for count in per_worker.values()), per_worker
        assert (domain,) in table_rows(mlflow_db, "SELECT name FROM registered_models")
        assert table_rows(airflow_db, "SELECT to_regclass('public.registered_models')") == [(None,)]
        airflow_ui.check_plugin(base, token)
        versions_before = table_rows(mlflow_db, "SELECT count(*) FROM model_versions")[0][0]
        running, record = check_worker_killed_mid_train(env, monkeypatch, airflow_db, mlflow_db, home, domain, running)
        assert table_rows(mlflow_db, "SELECT count(*) FROM model_versions")[0][0] == versions_before + 1
        check_decision_in_chromium(base, token, login, tmp_path, record)  # last: skips here without Chromium
    finally:
        if supervisor.poll() is None:
            children = running.get("children", {}) | (state.running(home) or {}).get("children", {})
            stop_and_check(supervisor, home, children)
        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in (airflow_db, mlflow_db):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def check_decision_in_chromium(base: str, token: str, login: tuple[str, str], tmp_path: Path, record: dict) -> None:
    """The UI on the production stack (FAB login): every DAG with its tags, the graph of the decide run,
    and the batch's decision and the domain's champion on the Continuum page."""
    from continuum import overview
    from continuum.decision import DecisionRecord

    chromium = airflow_ui.chromium_or_skip()
    domain, dag_id = record["domain"], f"{record['domain']}_decide"
    run_id = airflow_ui.last_finished_run(base, token, dag_id)
    with airflow_ui.browser_page(chromium) as page:
        frame, nodes = airflow_ui.browse(page, base, token, login, airflow_ui.Artifacts(tmp_path, "production"),
                                         (dag_id, run_id))
        assert sorted(nodes) == dag_task_ids(base, token, dag_id)  # the Graph shows every task of the DAG
        assert {"next_batch", "gate", "monitor", "train", "promote", "score"} <= set(nodes)
        card = frame.locator(f"#domain-{domain}").inner_text()
    outcome, _ = overview.outcome(DecisionRecord.model_validate(record))
    assert record["batch_id"] in card and outcome in card, card
    champion = (record.get("champion") or {}).get("version")
    assert (f"champion\tv{champion}" if champion else "champion\tnone") in card, card


def table_rows(database: str, query: str, params: tuple = ()) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=database)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    finally:
        conn.close()


def running_train(airflow_db: str, dag_id: str, timeout: float) -> tuple[str, int]:
    """(run_id, pid) of the decide DAG's `train` task once a worker runs it (pid set by the task runner)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = table_rows(airflow_db, "SELECT run_id, pid FROM task_instance WHERE dag_id = %s AND task_id = 'train' "
                          "AND state = 'running' AND pid IS NOT NULL", (dag_id,))
        if rows:
            return rows[0]
        time.sleep(0.5)
    pytest.fail(f"no {dag_id}.train ran within {timeout:.0f}s")


def worker_running(children: dict[str, int], pid: int) -> str:
    """The Celery worker whose process tree holds `pid` (both run on this host: the TI hostname cannot tell)."""
    import psutil

    for name, worker_pid in children.items():
        if name.startswith("celery-worker") and pid in {p.pid for p in psutil.Process(worker_pid).children(True)}:
            return name
    pytest.fail(f"process {pid} is under no Celery worker of {children}")


def kill_tree(pid: int) -> int:
    """SIGKILL a process and everything below it at once, as a machine dying would; returns how many."""
    import psutil

    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return len(processes)


def worker_that_ran(home: Path, ti_id: str) -> str:
    """The worker whose log shows it executing task instance `ti_id` (each try has its own id)."""
    found = [log.stem for log in (home / "logs").glob("celery-worker-*.log") if ti_id in log.read_text(errors="replace")]
    assert len(found) == 1, (ti_id, found)
    return found[0]


def check_worker_killed_mid_train(env, monkeypatch, airflow_db, mlflow_db, home, domain, running) -> tuple[dict, dict]:
    """Issue #11: SIGKILL the worker running `train` of a second batch; the run still decides it, once.

    The supervisor starts the dead worker again (compose's `restart: always`); Airflow sees the
    task's heartbeat stop, fails the try and retries it on whichever worker takes it. Returns
    the new platform.json and the batch's decision record.
    """
    from continuum import simulate

    drifted = simulate.generate(domain, 3000, seed=11, faults=["covariate_drift"]).to_csv(index=False).encode()
    batch_id = land(env, monkeypatch, domain, drifted, name="drifted")
    dag_id = f"{domain}_decide"
    run_id, pid = running_train(airflow_db, dag_id, timeout=240)
    killed = worker_running(running["children"], pid)
    killed_at = time.monotonic()
    assert kill_tree(running["children"][killed]) >= 3  # the worker, its pool process, the task's supervisor...
    record = wait_for_decision(domain, batch_id)
    took = time.monotonic() - killed_at
    after = state.running(home)
    assert after and after["restarts"] == {killed: 1} and after["children"][killed] != running["children"][killed]
    tries = table_rows(airflow_db, "SELECT try_number, state FROM task_instance_history WHERE dag_id = %s "
                       "AND run_id = %s AND task_id = 'train' ORDER BY try_number", (dag_id, run_id))
    assert tries and tries[0][1] == "failed", tries  # the killed try, failed by the heartbeat timeout
    ti_id, try_number, ti_state = table_rows(
        airflow_db, "SELECT id, try_number, state FROM task_instance WHERE dag_id = %s AND run_id = %s "
        "AND task_id = 'train'", (dag_id, run_id))[0]
    assert ti_state == "success" and try_number == len(tries) + 1, (ti_state, try_number, tries)
    retried_on = worker_that_ran(home, str(ti_id))
    print(f"worker-kill: {killed} killed during train of {batch_id}; retried as try {try_number} on "
          f"{retried_on} ({'the restarted one' if retried_on == killed else 'the survivor'}); "
          f"decision final {took:.0f}s after the kill")
    # side effects keyed by the batch id: one version registered for it, the one the record names
    versions = table_rows(mlflow_db, "SELECT version FROM model_version_tags WHERE name = %s AND key = 'batch_id' "
                          "AND value = %s", (domain, batch_id))
    assert versions == [(int(record["challenger"]["version"]),)], (versions, record["challenger"])
    assert record["finished"] and {"train", "score"} <= set(record["steps"]), record
    return after, record
