"""The supervisor behind `make run` (`continuum platform run`) and `make up-prod`.

It does what `airflow standalone` does, plus MLflow and S3, with the failure modes made
explicit: preconditions first (one line each), then `airflow db migrate` and
`airflow_settings.yaml`, then every component as a child process in its own process
group (so Ctrl-C reaches the supervisor only and it stops children in order, see
`STOP_WAVES`: whatever runs tasks first, the API server after them, S3 last for the final
snapshot). Output is prefixed by component and also kept in
`<home>/logs/<component>.log`. The supervisor writes `<home>/platform.json` while it
runs so CLI commands use the running services instead of starting their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from continuum import settings
from continuum.local import environment, preflight, state
from continuum.local.airflow_settings import DEFAULT_FILE as SETTINGS_FILE

BIN = Path(sys.executable).parent
STOP_TIMEOUT = 30.0
# How long a task process may take to report its state after SIGTERM (on_kill, state update).
TASK_STOP_GRACE = 10.0
# The order in which components stop, one wave at a time. Tasks report their state to the
# API server, so what runs tasks (scheduler with its executor, Celery workers) stops first
# while the API server still answers: tasks drain, or fail cleanly and are retried by the
# next start, instead of retrying against a dead API server. Parsing and deferral stop
# next, then the API server; MLflow and S3 last, because tasks write to them, and S3's
# snapshot must see every write. A component not named here stops with the first wave.
STOP_WAVES: tuple[tuple[str, ...], ...] = (
    ("scheduler", "celery-worker"),
    ("dag-processor", "triggerer"),
    ("api-server",),
    ("mlflow",),
    ("s3",),
)
WORKERS_VAR = "CONTINUUM_CELERY_WORKERS"
# The longest the scheduler and workers wait for the API server before starting anyway
# (supervise() then reports whatever does not come up).
API_START_TIMEOUT = 300.0
# A Celery worker that dies (out of memory, killed) is started again, as compose's
# `restart: always` and a Kubernetes Deployment do: Airflow retries its tasks once their
# heartbeat times out, on whichever worker takes them. Any other component that dies stops
# the platform, and so does a worker that has died this many times (it is broken, not unlucky).
WORKER_RESTARTS = 3
_print_lock = threading.Lock()


def say(component: str, line: str) -> None:
    with _print_lock:
        print(f"{component:<14}| {line}", flush=True)


@dataclass
class Child:
    """One component: a process group whose output goes to the terminal and to its log file."""

    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # on top of the platform's environment
    process: subprocess.Popen | None = None
    _reader: threading.Thread | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command,
            env=env | self.env,
            cwd=environment.settings.REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: signals are ours to send
        )
        self._reader = threading.Thread(target=self._pump, name=f"log-{self.name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process and self.process.stdout
        with open(self.log_path, "ab") as log:
            for raw in self.process.stdout:
                log.write(raw)
                log.flush()
                say(self.name, raw.decode(errors="replace").rstrip())

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, sig: int, group: bool = False) -> None:
        """Signal the component's main process, or its whole process group (stragglers included)."""
        if self.process is None or (not group and self.process.poll() is not None):
            return
        try:
            if group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        except ProcessLookupError:
            pass

    def descendants(self) -> list:
        """Every process below the component, whatever session it started."""
        import psutil

        if self.process is None or self.process.poll() is not None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return []

    def tasks(self) -> list:
        """The task processes below the component: Airflow runs each task in a process group of its own."""
        result = []
        for process in self.descendants():
            with contextlib.suppress(OSError):
                if os.getpgid(process.pid) != self.process.pid:
                    result.append(process)
        return result

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        if self._reader:
            self._reader.join(timeout=5)
        return True


def children(plan: environment.Plan, log_dir: Path) -> list[Child]:
    """The components to run, in start order (S3 and MLflow first: Airflow tasks use them)."""
    result: list[Child] = []
    host = environment.HOST
    if plan.start_s3:
        buckets = [environment.bucket(plan.env), environment.mlflow_bucket(plan.env)]
        command = [sys.executable, "-m", "continuum.local.s3server", "--host", host, "--port", str(plan.ports.s3)]
        command += ["--snapshot-dir", str(plan.home / "s3")] + [arg for b in buckets for arg in ("--bucket", b)]
        if settings.landing_mode(plan.env) == "events":  # moto's SQS queue, notified of new landing objects
            command += ["--landing-queue", environment.LANDING_QUEUE]
        result.append(Child("s3", command, log_dir / "s3.log"))
    if plan.start_mlflow:
        command = [str(BIN / "mlflow"), "server", "--backend-store-uri", plan.mlflow_backend_uri]
        command += ["--default-artifact-root", plan.mlflow_artifact_root, "--host", host]
        command += ["--port", str(plan.ports.mlflow), "--workers", "1"]
        result.append(Child("mlflow", command, log_dir / "mlflow.log"))
    components = ["api-server", "scheduler", "dag-processor", "triggerer"]
    for component in components:
        result.append(Child(component, [str(BIN / "airflow"), component], log_dir / f"{component}.log"))
    if plan.production:
        result += celery_workers(plan, log_dir)
    return result


def worker_count(env: dict[str, str]) -> int:
    raw = env.get(WORKERS_VAR) or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 16:
        raise ValueError(f"{WORKERS_VAR}={raw!r} is not a worker count; set it to a number from 1 to 16")
    return int(raw)


def celery_workers(plan: environment.Plan, log_dir: Path) -> list[Child]:
    """`CONTINUUM_CELERY_WORKERS` Celery workers (default 1), as separate machines would run them.

    Workers on one host need distinct Celery node names; only the first serves task logs
    on the worker log port (the others' logs are local files the API server reads too).
    """
    count = worker_count(plan.env)
    concurrency = str(max(2, os.cpu_count() or 2) if count == 1 else 2)
    workers = []
    for number in range(1, count + 1):
        name = "celery-worker" if count == 1 else f"celery-worker-{number}"
        command = [str(BIN / "airflow"), "celery", "worker", "--concurrency", concurrency]
        command += ["--celery-hostname", f"{name}@%h"] + (["--skip-serve-logs"] if number > 1 else [])
        workers.append(Child(name, command, log_dir / f"{name}.log"))
    return workers


def _get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return None


def readiness(plan: environment.Plan) -> dict[str, bool]:
    """Which started services answer: S3 any HTTP answer, MLflow /health, Airflow all jobs healthy."""
    status: dict[str, bool] = {}
    if plan.start_s3:
        status["s3"] = _get(f"http://{environment.HOST}:{plan.ports.s3}/") is not None
    if plan.start_mlflow:
        answer = _get(f"http://{environment.HOST}:{plan.ports.mlflow}/health")
        status["mlflow"] = answer is not None and answer[0] == 200
    answer = _get(f"http://{environment.HOST}:{plan.ports.airflow}/api/v2/monitor/health")
    healthy = False
    if answer and answer[0] == 200:
        health = json.loads(answer[1] or b"{}")
        parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
        healthy = all((health.get(p) or {}).get("status") == "healthy" for p in parts)
    status["airflow"] = healthy
    return status


def wait_for_api_server(plan: environment.Plan, api_server: Child, stop: threading.Event) -> None:
    """Hold back the scheduler and workers until the API server answers (or dies, or Ctrl-C).

    The mirror of the stop order: a task started before the API server is up spends its
    first attempts on connection errors (measured: ~50 s of API start on a busy 2-core box).
    """
    url = f"http://{environment.HOST}:{plan.ports.airflow}/api/v2/monitor/health"
    deadline = time.monotonic() + API_START_TIMEOUT
    while api_server.exited() is None and time.monotonic() < deadline and not stop.is_set():
        answer = _get(url)
        if answer is not None and answer[0] == 200:
            return
        stop.wait(1.0)


def banner(plan: environment.Plan) -> str:
    yours = {"mlflow": not plan.start_mlflow, "s3": not plan.start_s3}
    login = f"login {environment.ADMIN_LOGIN[0]} / {environment.ADMIN_LOGIN[1]}"
    user_var, password_var = environment.ADMIN_USER_VARS
    if plan.production and plan.env.get(password_var) != environment.ADMIN_LOGIN[1]:
        login = f"login {plan.env.get(user_var)} / ${password_var}"
    rows = [
        ("Airflow UI", plan.endpoints["airflow"], login),
        ("MLflow", plan.endpoints["mlflow"], "yours (MLFLOW_TRACKING_URI)" if yours["mlflow"] else ""),
        ("S3 endpoint", plan.endpoints["s3"], "yours (AWS_ENDPOINT_URL)" if yours["s3"] else
         f"buckets {environment.bucket(plan.env)}, {environment.mlflow_bucket(plan.env)}"),
    ]
    mode = "production (CeleryExecutor, Postgres, Redis)" if plan.production else "embedded (LocalExecutor, SQLite)"
    lines = ["", f"Continuum is running: {mode}"]
    lines += [f"  {name:<12} {url:<28} {note}".rstrip() for name, url, note in rows]
    lines += [f"  state        {plan.home}", f"  logs         {plan.home / 'logs'}", "Press Ctrl-C to stop.", ""]
    return "\n".join(lines)


def state_record(plan: environment.Plan, running: list[Child], status: str, restarts: dict | None = None) -> dict:
    exported = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL",
                "CONTINUUM_MLFLOW_ARTIFACTS", "AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    return {
        "pid": os.getpid(),
        "mode": "production" if plan.production else "embedded",
        "status": status,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "home": str(plan.home),
        "endpoints": plan.endpoints,
        "env": {k: plan.env[k] for k in exported if plan.env.get(k)},
        "children": {c.name: c.process.pid for c in running if c.process},
        "restarts": restarts or {},
        "logs": str(plan.home / "logs"),
    }


def stop_waves(running: list[Child]) -> list[list[Child]]:
    """The running components grouped by `STOP_WAVES`, first wave first, empty waves left out."""
    def wave_of(child: Child) -> int:
        for index, names in enumerate(STOP_WAVES):
            if any(child.name == name or child.name.startswith(f"{name}-") for name in names):
                return index
        return 0

    waves = [[c for c in running if wave_of(c) == index] for index in range(len(STOP_WAVES))]
    return [wave for wave in waves if wave]


def stop_all(running: list[Child]) -> None:
    """Stop wave by wave (`STOP_WAVES`): SIGTERM, wait, end the tasks still running, SIGKILL stragglers.

    SIGTERM goes to the main process first, as `airflow standalone` does: the scheduler's
    LocalExecutor and Celery's warm shutdown then wait for running tasks (drain). Tasks
    still running after `STOP_TIMEOUT` get SIGTERM themselves while the API server is
    still up, so they fail cleanly and record it (Airflow retries them on the next start).
    Whatever is left in a group once its main process is gone (or after that) is killed.
    """
    for wave in stop_waves(running):
        # Task processes run in process groups of their own, so the group kill below misses them:
        # remember every descendant now, while they are still in the tree.
        descendants = [d for child in wave for d in child.descendants()]
        tasks = [p for child in wave for p in child.tasks()]
        for child in wave:
            child.signal(signal.SIGTERM)
        if not _wait_all(wave, STOP_TIMEOUT):
            # Only the task processes: signalling the executor's own workers hangs the
            # LocalExecutor, while a task's on-TERM handler reports it failed and exits.
            _kill_survivors(tasks, grace=TASK_STOP_GRACE)
            _wait_all(wave, TASK_STOP_GRACE)
        for child in wave:
            if child.exited() is None:
                say("continuum", f"{child.name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
            child.signal(signal.SIGKILL, group=True)
            child.wait(10)
        _kill_survivors(descendants)


def _wait_all(wave: list[Child], timeout: float) -> bool:
    """True once every component of the wave has exited, False at the timeout."""
    deadline = time.monotonic() + timeout
    return all([child.wait(max(0.1, deadline - time.monotonic())) for child in wave])


def _kill_survivors(processes: list, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, whatever is left of a component's process tree."""
    import psutil

    alive = [p for p in processes if p.is_running()]
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, still = psutil.wait_procs(alive, timeout=grace)
    for process in still:
        with contextlib.suppress(psutil.Error):
            process.kill()


def prepare(plan: environment.Plan, log_dir: Path) -> None:
    """Every precondition, then the database and the settings file; raises PreflightError."""
    preflight.check_not_running(plan)
    preflight.check_dependencies(plan)
    preflight.check_ports(plan)
    if plan.production:
        preflight.check_production_services(plan)
        preflight.check_celery_executor(plan)
    environment.write_passwords_file(environment.passwords_file(plan.airflow_home))
    say("continuum", "migrating the Airflow database")
    preflight.migrate_airflow_db(plan, log_dir)
    say("continuum", f"loading {SETTINGS_FILE.name}")
    preflight.load_airflow_settings(plan, SETTINGS_FILE, log_dir)


def restart_worker(plan: environment.Plan, worker: Child, restarts: dict[str, int]) -> bool:
    """Start a dead Celery worker again (False once it has died `WORKER_RESTARTS` times, or for any other component).

    What is left of its process group (pool processes) is killed first, so the new worker
    does not run beside the remains of the old one under the same Celery node name.
    """
    if not worker.name.startswith("celery-worker") or restarts.get(worker.name, 0) >= WORKER_RESTARTS:
        return False
    restarts[worker.name] = restarts.get(worker.name, 0) + 1
    say("continuum", f"{worker.name} exited unexpectedly (exit code {worker.exited()}); restarting it "
        f"({restarts[worker.name]} of {WORKER_RESTARTS}); its tasks are retried after their heartbeat times out")
    worker.signal(signal.SIGKILL, group=True)
    worker.start(plan.env)
    return True


def supervise(plan: environment.Plan, running: list[Child], stop: threading.Event) -> int:
    """Wait for readiness, print the banner, then watch the children until stop or a death."""
    ready_shown, last_wait_note = False, time.monotonic()
    restarts: dict[str, int] = {}
    while not stop.wait(1.0):
        dead = next((c for c in running if c.exited() is not None), None)
        if dead and restart_worker(plan, dead, restarts):
            state.write(plan.home, state_record(plan, running, "ready" if ready_shown else "starting", restarts))
            continue
        if dead:
            say("continuum", f"{dead.name} exited unexpectedly (exit code {dead.exited()}); "
                f"see {dead.log_path}. Stopping the other components.")
            return 1
        if ready_shown:
            continue
        status = readiness(plan)
        if all(status.values()):
            state.write(plan.home, state_record(plan, running, "ready", restarts))
            print(banner(plan), flush=True)
            ready_shown = True
        elif time.monotonic() - last_wait_note > 30:
            waiting = ", ".join(name for name, ok in status.items() if not ok)
            say("continuum", f"still waiting for: {waiting}")
            last_wait_note = time.monotonic()
    return 0


def run(production: bool = False) -> int:
    """Start the platform and block until Ctrl-C/SIGTERM (returns 0) or a component dies (1)."""
    try:
        plan = environment.plan(production=production)
    except ValueError as exc:
        print(f"continuum: {exc}", file=sys.stderr)
        return 2
    log_dir = plan.home / "logs"
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    running: list[Child] = []
    try:
        prepare(plan, log_dir)
        if stop.is_set():
            return 0
        for child in children(plan, log_dir):
            child.start(plan.env)
            running.append(child)
            if child.name == "api-server":
                wait_for_api_server(plan, child, stop)
        state.write(plan.home, state_record(plan, running, "starting"))
        return supervise(plan, running, stop)
    except preflight.PreflightError as exc:
        if stop.is_set():  # Ctrl-C during preparation also interrupts `airflow db migrate`
            return 0
        print(f"continuum: {exc}", file=sys.stderr)
        return 2
    finally:
        if running:
            say("continuum", "stopping")
            stop_all(running)
            say("continuum", "stopped")
        if running or state.running(plan.home) is None:
            state.remove(plan.home)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
