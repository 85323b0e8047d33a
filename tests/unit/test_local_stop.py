"""Stopping the platform leaves nothing behind, not even task processes in sessions of their own."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from continuum.local import platform

# A component that, like Airflow's task runner, starts a grandchild in a new session.
SPAWNER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
    "time.sleep(600)\n"
)


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
