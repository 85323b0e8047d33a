"""`<CONTINUUM_HOME>/platform.json`: how CLI commands find a running platform.

Written by the supervisor while it runs and removed when it stops. A file left behind
by a killed supervisor is recognised as stale (its pid is gone) and ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILENAME = "platform.json"


def path(home: Path) -> Path:
    return Path(home) / FILENAME


def write(home: Path, state: dict[str, Any]) -> Path:
    target = path(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(target)
    return target


def remove(home: Path) -> None:
    path(home).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(home: Path) -> dict[str, Any] | None:
    """The state of the platform running on this home, or None (no file, unreadable or stale)."""
    try:
        state = json.loads(path(home).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    return state
