"""Stopping the platform: the stop order, tasks ended while the API server is up, nothing left behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from continuum.local import platform

# A component that, like Airflow's task runner, starts a grandchild in a new session.
SPAWNER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
    "time.sleep(600)\n"
)

# A component that writes its name to a record file when it gets SIGTERM, then exits.
# With a task, it starts one in a process group of its own (as Airflow's supervisor does)
# and, like the LocalExecutor draining, waits for the task to end before it exits.
COMPONENT = '''
import os, signal, subprocess, sys, time
name, record, with_task = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def note(what):
    with open(record, "a") as f:
        f.write(what + "\\n")
task = None
if with_task:
    task = subprocess.Popen([sys.executable, "-c", """
import signal, sys, time
def term(*_):
    open(sys.argv[1], "a").write("task\\\\n")
    sys.exit(1)
signal.signal(signal.SIGTERM, term)
time.sleep(600)
""", record], process_group=0)
def on_term(*_):
    note(name)
    if task is not None:
        task.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(record + "." + name + ".ready", "w").close()
time.sleep(600)
'''


def _component(tmp_path: Path, name: str, record: Path, with_task: bool = False) -> platform.Child:
    command = [sys.executable, "-c", COMPONENT, name, str(record), "1" if with_task else "0"]
    return platform.Child(name=name, command=command, log_path=tmp_path / f"{name}.log")


def test_stop_all_kills_descendants_in_other_sessions(tmp_path):
    child = platform.Child(name="fake", command=[sys.executable, "-c", SPAWNER], log_path=tmp_path / "fake.log")
    child.start(env={"PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 20
    while not child.descendants() and time.monotonic() < deadline:
        time.sleep(0.1)
    [grandchild] = child.descendants()
    assert grandchild.pid != child.process.pid
    assert subprocess.run(["ps", "-o", "sid=", "-p", str(grandchild.pid)], capture_output=True, text=True).stdout

    platform.stop_all([child])

    assert child.exited() is not None
    assert not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE


def test_stop_waves_put_task_runners_first_and_s3_last(tmp_path):
    names = ["s3", "mlflow", "api-server", "scheduler", "dag-processor", "triggerer",
             "celery-worker-1", "celery-worker-2", "something-new"]
    running = [platform.Child(name, ["true"], tmp_path / f"{name}.log") for name in names]

    waves = [[child.name for child in wave] for wave in platform.stop_waves(running)]

    assert waves == [
        ["scheduler", "celery-worker-1", "celery-worker-2", "something-new"],
        ["dag-processor", "triggerer"],
        ["api-server"],
        ["mlflow"],
        ["s3"],
    ]


def test_stop_all_ends_running_tasks_before_the_api_server_and_s3_last(tmp_path, monkeypatch):
    """The scheduler waits for its task (drain); at the timeout the task is ended while the API is up."""
    monkeypatch.setattr(platform, "STOP_TIMEOUT", 1.0)
    record = tmp_path / "record.txt"
    names = ["s3", "mlflow", "api-server", "scheduler", "dag-processor", "triggerer", "celery-worker"]
    running = [_component(tmp_path, name, record, with_task=name == "scheduler") for name in names]
    for child in running:  # started in the platform's start order: S3 first
        child.start(env={"PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        all(Path(f"{record}.{name}.ready").exists() for name in names) and running[3].tasks()
    ):
        time.sleep(0.1)
    [task] = running[3].tasks()

    platform.stop_all(running)

    order = record.read_text().split()
    assert sorted(order) == sorted([*names, "task"]), order
    position = {name: order.index(name) for name in order}
    first_wave = max(position["scheduler"], position["celery-worker"], position["task"])
    assert first_wave < min(position["dag-processor"], position["triggerer"]), order
    assert max(position["dag-processor"], position["triggerer"]) < position["api-server"], order
    assert position["api-server"] < position["mlflow"] < position["s3"], order
    assert all(child.exited() is not None for child in running)
    assert running[3].exited() == 0, "the scheduler was killed instead of exiting once its task ended"
    assert not task.is_running() or task.status() == psutil.STATUS_ZOMBIE


def test_scheduler_and_workers_wait_until_the_api_server_answers(tmp_path):
    """The start mirror of the stop order: no task is dispatched before the API server is up."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from types import SimpleNamespace

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(200 if self.path == "/api/v2/monitor/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)  # bound now, answering only once serve_forever runs
    port = server.server_address[1]
    answering = threading.Event()

    def serve_later():
        time.sleep(2)
        answering.set()
        server.serve_forever()

    threading.Thread(target=serve_later, daemon=True).start()
    api_server = platform.Child("api-server", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "a.log")
    api_server.start(env={"PATH": "/usr/bin:/bin"})
    try:
        plan = SimpleNamespace(ports=SimpleNamespace(airflow=port))
        platform.wait_for_api_server(plan, api_server, threading.Event())
        assert answering.is_set(), "returned before the API server answered"
    finally:
        server.shutdown()
        platform.stop_all([api_server])
