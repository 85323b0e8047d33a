"""A dead Celery worker is started again (compose's `restart: always`), a limited number of times; nothing else is."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from continuum.local import platform

EXIT_AT_ONCE = [sys.executable, "-c", "raise SystemExit(3)"]


def test_a_dead_celery_worker_is_restarted_until_the_limit(tmp_path):
    plan = SimpleNamespace(env={"PATH": "/usr/bin:/bin"})
    worker = platform.Child("celery-worker-2", EXIT_AT_ONCE, tmp_path / "worker.log")
    worker.start(plan.env)
    restarts: dict[str, int] = {}
    pids = []
    for count in range(1, platform.WORKER_RESTARTS + 1):
        worker.wait(10)
        pids.append(worker.process.pid)
        assert platform.restart_worker(plan, worker, restarts)
        assert restarts == {"celery-worker-2": count}
    worker.wait(10)
    assert len(set(pids + [worker.process.pid])) == platform.WORKER_RESTARTS + 1  # a new process each time
    assert not platform.restart_worker(plan, worker, restarts)  # broken, not unlucky: the platform stops
    assert restarts == {"celery-worker-2": platform.WORKER_RESTARTS}


def test_other_components_are_not_restarted(tmp_path):
    plan = SimpleNamespace(env={"PATH": "/usr/bin:/bin"})
    scheduler = platform.Child("scheduler", EXIT_AT_ONCE, tmp_path / "scheduler.log")
    scheduler.start(plan.env)
    scheduler.wait(10)
    assert not platform.restart_worker(plan, scheduler, {})
    assert scheduler.exited() == 3
