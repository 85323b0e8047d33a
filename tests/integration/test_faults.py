"""Faults survived against real local services: MLflow and S3 down, silent or flaky.

- Bounded clients: against a socket that accepts and never answers, each client makes
  exactly the attempts `settings.CLIENT_ENV` allows and then raises (attempts are counted,
  not timed), and the CLI says in one line which service is down.
- S3 down for a while: writes are retried and land whole or not at all.
- MLflow (a real `mlflow server`) stopped during monitor, training, promotion, scoring and
  prompt evaluation: the step raises, no alias moves, and the same step completes once the
  server is back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from continuum import cli, landing, pipeline, settings, simulate, storage

DOMAIN = "insurance_claim_risk"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentServer:
    """Accepts connections and never answers; counts them (one per client attempt)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._open.append(conn)  # kept open and unanswered until close()

    def close(self):
        self.sock.close()
        for conn in self._open:
            conn.close()


class FlakyProxy:
    """A TCP proxy in front of `target` whose first `failures` connections break.

    A broken connection passes the first `cut_after` bytes of the request on (0: none) and
    closes both sides without answering, as a network that fails mid-upload does.
    """

    def __init__(self, target: str, failures: int, cut_after: int = 0):
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.failures, self.cut_after = failures, cut_after
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.target)
            if self.connections <= self.failures:
                with contextlib.suppress(OSError):  # the endpoint sees the start of the upload, then nothing
                    if self.cut_after:
                        upstream.sendall(conn.recv(self.cut_after))
                conn.close()
                upstream.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{_free_port()}"  # bound then released: nothing listens there


# -- bounded clients -------------------------------------------------------------------------


def test_mlflow_gives_up_after_the_configured_attempts(monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    from continuum import outages

    silent = SilentServer()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")  # keeps the test short; the count is the point
    try:
        with pytest.raises(MlflowException) as error:
            mlflow.MlflowClient(tracking_uri=silent.url).search_experiments(max_results=1)
    finally:
        silent.close()
    assert silent.accepted == int(settings.CLIENT_ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) + 1
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == settings.CLIENT_ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent.url)
    assert outages.describe(error.value) == (
        f"MLflow at {silent.url} is unreachable: start it or set MLFLOW_TRACKING_URI"
    )


def test_s3_gives_up_after_the_configured_attempts(s3, monkeypatch):
    from botocore.exceptions import ReadTimeoutError

    silent = SilentServer()
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent.url)
    monkeypatch.setenv("CONTINUUM_S3_READ_TIMEOUT", "1")
    storage.client.cache_clear()
    try:
        with pytest.raises(ReadTimeoutError):
            storage.get_json("anything.json")
    finally:
        silent.close()
        storage.client.cache_clear()
    assert silent.accepted == int(settings.CLIENT_ENV["AWS_MAX_ATTEMPTS"])


def test_the_bounds_reach_every_process_and_the_platform(tmp_path):
    from continuum.local import environment

    code = "import os, continuum; print(os.environ['MLFLOW_HTTP_REQUEST_MAX_RETRIES'], os.environ['AWS_MAX_ATTEMPTS'])"
    env = {k: v for k, v in os.environ.items() if k not in settings.CLIENT_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [settings.CLIENT_ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"], settings.CLIENT_ENV["AWS_MAX_ATTEMPTS"]]

    plan = environment.plan({"CONTINUUM_HOME": str(tmp_path), "MLFLOW_HTTP_REQUEST_TIMEOUT": "45"}, secrets={
        "jwt_secret": "j" * 64, "api_secret_key": "a", "fernet_key": "f"})
    assert plan.env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "45"  # the user's tunable wins
    assert plan.env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == settings.CLIENT_ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert plan.env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"


def test_every_task_gets_a_time_limit_and_backoff(monkeypatch):
    from datetime import timedelta

    monkeypatch.syspath_prepend(str(settings.plugins_dir()))  # Airflow does the same for plugins/
    from continuum_notifier import default_args

    args = default_args("team")
    assert args["execution_timeout"] == timedelta(minutes=settings.TASK_TIMEOUT_MINUTES)
    assert args["retries"] >= 2 and args["retry_exponential_backoff"] is True
    assert default_args("team", execution_timeout=timedelta(hours=2))["execution_timeout"] == timedelta(hours=2)
    monkeypatch.setenv("CONTINUUM_TASK_TIMEOUT_MINUTES", "5")
    assert default_args("team")["execution_timeout"] == timedelta(minutes=5)
    assert default_args("team")["retry_delay"] == timedelta(seconds=settings.RETRY_DELAY_SECONDS)
    monkeypatch.setenv("CONTINUUM_RETRY_DELAY_SECONDS", "2")  # what tests under the real scheduler use
    assert default_args("team")["retry_delay"] == timedelta(seconds=2)


# -- the CLI says which service is down ------------------------------------------------------


@pytest.fixture
def batch_file(tmp_path) -> Path:
    path = tmp_path / "batch.csv"
    simulate.generate(DOMAIN, 200, seed=3).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("command", ["ingest", "llm"])
def test_cli_reports_mlflow_down_in_one_line(command, s3, batch_file, monkeypatch, capsys):
    url = _closed_port_url()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    argv = ["ingest", DOMAIN, str(batch_file), "--run"]
    if command == "llm":
        argv = ["llm", "ingest", "shopping_assistant", str(batch_file), "--run"]
    assert cli.main(argv) == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("continuum:")]
    assert err == [f"continuum: MLflow at {url} is unreachable: start it or set MLFLOW_TRACKING_URI"]
    assert storage.list_keys(f"landing/{DOMAIN}/") == [] and storage.list_keys("llm/") == []  # nothing landed


def test_cli_reports_s3_down_in_one_line(s3, mlflow_store, batch_file, monkeypatch, capsys):
    url = _closed_port_url()
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    storage.client.cache_clear()
    try:
        assert cli.main(["ingest", DOMAIN, str(batch_file)]) == 3
    finally:
        storage.client.cache_clear()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("continuum:")]
    assert err == [f"continuum: S3 at {url} is unreachable: start it or set AWS_ENDPOINT_URL"]


# -- S3 down for a while ---------------------------------------------------------------------


def test_a_write_during_a_short_outage_is_retried_and_lands_whole(s3, s3_endpoint, monkeypatch):
    frame = simulate.generate(DOMAIN, 2000, seed=5)
    proxy = FlakyProxy(s3_endpoint, failures=int(settings.CLIENT_ENV["AWS_MAX_ATTEMPTS"]) - 1, cut_after=4096)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    storage.client.cache_clear()
    try:
        storage.put_frame("faults/whole.parquet", frame)
    finally:
        proxy.close()
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        storage.client.cache_clear()
    assert proxy.connections == int(settings.CLIENT_ENV["AWS_MAX_ATTEMPTS"])  # two broken, the third worked
    assert storage.get_frame("faults/whole.parquet").equals(frame)


def test_a_write_during_a_long_outage_fails_and_leaves_no_partial_object(s3, s3_endpoint, monkeypatch):
    frame = simulate.generate(DOMAIN, 2000, seed=5)
    proxy = FlakyProxy(s3_endpoint, failures=100, cut_after=4096)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    storage.client.cache_clear()
    try:
        with pytest.raises(Exception) as error:
            storage.put_frame("faults/partial.parquet", frame)
    finally:
        proxy.close()
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        storage.client.cache_clear()
    from continuum import outages

    assert outages.describe(error.value) is not None  # an outage, which fails the task for Airflow to retry
    assert proxy.connections == int(settings.CLIENT_ENV["AWS_MAX_ATTEMPTS"])
    assert not storage.exists("faults/partial.parquet")


# -- MLflow stopped during monitor, training and promotion -----------------------------------


class MlflowServer:
    """`mlflow server` on a fixed port and SQLite file, so a restart is the same server again."""

    def __init__(self, root: Path):
        self.db = root / "mlflow.db"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "mlflow-server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.db}",
            "--default-artifact-root", f"s3://{settings.mlflow_bucket()}/",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 420  # a readiness limit for a loaded machine, not an assertion
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                pytest.fail(f"mlflow server exited: {self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return
            time.sleep(0.5)
        self.stop()  # never leave a server behind
        pytest.fail(f"mlflow server not ready: {self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


@pytest.fixture
def mlflow_server(s3, tmp_path, monkeypatch):
    import mlflow

    server = MlflowServer(tmp_path)
    try:
        server.start()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("CONTINUUM_MLFLOW_ARTIFACTS", f"s3://{settings.mlflow_bucket()}/")
        mlflow.set_tracking_uri(server.url)
        yield server
    finally:
        mlflow.set_tracking_uri(None)  # process-global: never leak this server's URI to later tests
        server.stop()


def _aliases(name: str) -> dict[str, str]:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return {k: str(v) for k, v in mlflow.MlflowClient().get_registered_model(name).aliases.items()}
    except MlflowException:
        return {}


def _land(seed: int) -> str:
    landing.land_file(DOMAIN, f"batch-{seed}.csv", simulate.generate(DOMAIN, 1500, seed=seed).to_csv(index=False).encode())
    (batch_id,) = landing.register_landed(DOMAIN)
    assert pipeline.run_gate(DOMAIN, batch_id)["success"]
    return batch_id


def _fails_while_down(server: MlflowServer, step, batch_id: str) -> None:
    """The step raises an outage while MLflow is stopped; no alias moved; the server comes back."""
    from continuum import outages

    before = _aliases(DOMAIN)
    server.stop()
    with pytest.raises(Exception) as error:
        step(DOMAIN, batch_id)
    assert outages.describe(error.value) is not None, f"{step.__name__} failed for another reason: {error.value!r}"
    server.start()
    assert _aliases(DOMAIN) == before


@pytest.mark.slow
@pytest.mark.timeout(2400)  # six server starts; a shared 2-core machine makes each slow
def test_steps_fail_cleanly_while_mlflow_is_down_and_complete_after(mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast here; the bound is tested above
    first = _land(seed=11)

    _fails_while_down(mlflow_server, pipeline.run_monitor, first)
    assert pipeline.run_monitor(DOMAIN, first)["reasons"] == ["no_champion"]

    _fails_while_down(mlflow_server, pipeline.run_training, first)
    trained = pipeline.run_training(DOMAIN, first)
    assert trained["trained"] and trained["blessed"]

    _fails_while_down(mlflow_server, pipeline.run_promotion, first)
    assert _aliases(DOMAIN) == {}
    assert pipeline.run_promotion(DOMAIN, first)["champion"] == trained["version"]

    # With a champion, an outage must not read as "no champion".
    second = _land(seed=12)
    _fails_while_down(mlflow_server, pipeline.run_monitor, second)
    assert "no_champion" not in pipeline.run_monitor(DOMAIN, second)["reasons"]
    _fails_while_down(mlflow_server, pipeline.run_scoring, second)
    assert pipeline.run_scoring(DOMAIN, second)["scores"]
    assert _aliases(DOMAIN) == {"champion": trained["version"]}


def _prompt_aliases(name: str) -> dict[str, object]:
    from continuum.llm import prompts

    return {"production": prompts.production(name), "candidates": prompts.candidates(name)}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_prompt_evaluation_fails_cleanly_while_mlflow_is_down_and_completes_after(mlflow_server, monkeypatch):
    """The prompt_eval DAG's MLflow steps (compare, record) raise while MLflow is stopped; no alias moves."""
    from datetime import UTC, datetime, timedelta

    from continuum import outages
    from continuum.llm import evaluation, intake, prompts
    from continuum.llm import simulate as llm_simulate
    from continuum.llm.specs import get_assistant

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    spec = get_assistant("shopping_assistant")
    prompts.seed(spec)
    before = _prompt_aliases(spec.name)
    assert before["production"] == "1"
    now = datetime.now(UTC)
    logs = llm_simulate.generate(spec.name, n=900, seed=7, versions={"1": 0.5, "4": 0.5}, start=now - timedelta(days=1))
    intake.land_logs(spec.name, "logs.jsonl", llm_simulate.to_jsonl(logs))
    evaluation.validate_and_redact(spec)  # S3 only
    window = evaluation.score(spec, now)["window"]

    decided = evaluation.compare_and_decide(spec, window)
    assert decided["decision"]["promote"] == "4", decided["decision"]

    run = "scheduled__2026-03-02T00:00:00+00:00"
    mlflow_server.stop()  # one stop for every step: each server start costs time
    for step in (
        lambda: prompts.production(spec.name),  # an outage is not "no production prompt"
        lambda: evaluation.compare_and_decide(spec, window),
        lambda: evaluation.record(spec, window, decided, run=run, deciding=True),
    ):
        with pytest.raises(Exception) as error:
            step()
        assert outages.describe(error.value) is not None, f"failed for another reason: {error.value!r}"
    assert storage.list_keys(storage.LlmKeys(spec.name).decisions_prefix) == []  # nothing was recorded
    mlflow_server.start()
    assert _prompt_aliases(spec.name) == before  # production did not move on the error

    assert evaluation.compare_and_decide(spec, window)["decision"] == decided["decision"]  # the retries
    result = evaluation.record(spec, window, decided, run=run, deciding=True)
    assert result["production_before"] == "1" and result["production_after"] == "4" and result["promoted"]
    assert prompts.production(spec.name) == "4"
