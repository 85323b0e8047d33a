"""Connections, pools and variables from `airflow_settings.yaml` (the Astro CLI format).

Astro projects keep local Airflow objects in this file; we read the same format so a
project moves between `astro dev start` and `make run` unchanged. Parsing is plain
Python; `apply()` is the thin Airflow adapter (imports Airflow inside the function) and
upserts, so loading the file at every start is idempotent and the file wins, except
that a variable with an empty value only declares the variable and never erases a value
set in the UI (e.g. a webhook URL you keep out of the repository). Entries whose name
is empty are skipped, as the Astro CLI does, so the template's blank entries are harmless.

The same command initialises every deployment after `airflow db migrate`: `make run`,
`make up-prod`, compose's `airflow-init` and the Helm chart's jobs run
`python -m continuum.local.airflow_settings airflow_settings.yaml`
in a process whose environment points at that deployment's Airflow. With the FAB auth
manager (production) it also creates the admin user named by `_AIRFLOW_WWW_USER_USERNAME`
and `_AIRFLOW_WWW_USER_PASSWORD` (the official image's names), or resets its password to
that value, so changing the password in the env file and re-running init takes effect.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from continuum import settings
from continuum.local.environment import ADMIN_USER_VARS as ADMIN_VARS
from continuum.local.environment import FAB_AUTH_MANAGER

DEFAULT_FILE = settings.REPO_ROOT / "airflow_settings.yaml"


class SettingsFileError(ValueError):
    pass


@dataclass(frozen=True)
class ConnectionSetting:
    conn_id: str
    conn_type: str
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: str | None = None


@dataclass(frozen=True)
class PoolSetting:
    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True)
class AirflowSettings:
    connections: list[ConnectionSetting] = field(default_factory=list)
    pools: list[PoolSetting] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)


def parse(document: Any, source: str = "airflow_settings.yaml") -> AirflowSettings:
    """Validate the YAML document; errors name the file, the section and the entry."""
    if document is None:
        return AirflowSettings()
    if not isinstance(document, dict) or not isinstance(document.get("airflow") or {}, dict):
        raise SettingsFileError(f"{source}: expected a top-level 'airflow:' mapping (Astro CLI format)")
    section = document.get("airflow") or {}
    return AirflowSettings(
        connections=[_connection(e, f"{source}: airflow.connections[{i}]") for i, e in _entries(section, "connections", "conn_id", source)],
        pools=[_pool(e, f"{source}: airflow.pools[{i}]") for i, e in _entries(section, "pools", "pool_name", source)],
        variables={
            str(e["variable_name"]): "" if e.get("variable_value") is None else _text(e["variable_value"])
            for _, e in _entries(section, "variables", "variable_name", source)
        },
    )


def load(path: Path = DEFAULT_FILE) -> AirflowSettings:
    """Read a settings file; a missing file means nothing to load."""
    import yaml

    path = Path(path)
    if not path.exists():
        return AirflowSettings()
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SettingsFileError(f"{path}: not valid YAML ({exc}); fix the file or delete it") from exc
    return parse(document, str(path))


def _entries(section: dict, name: str, key: str, source: str):
    entries = section.get(name) or []
    if not isinstance(entries, list):
        raise SettingsFileError(f"{source}: airflow.{name} must be a list of entries")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SettingsFileError(f"{source}: airflow.{name}[{index}] must be a mapping with '{key}'")
        if entry.get(key) not in (None, ""):
            yield index, entry


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _connection(entry: dict, where: str) -> ConnectionSetting:
    if not entry.get("conn_type"):
        raise SettingsFileError(f"{where}: conn_type is required (e.g. http, postgres, aws)")
    port = entry.get("conn_port")
    if port not in (None, "") and not str(port).isdigit():
        raise SettingsFileError(f"{where}: conn_port must be a number, got {port!r}")
    extra = entry.get("conn_extra")
    return ConnectionSetting(
        conn_id=str(entry["conn_id"]),
        conn_type=str(entry["conn_type"]),
        host=entry.get("conn_host") or None,
        port=int(port) if port not in (None, "") else None,
        login=entry.get("conn_login") or None,
        password=entry.get("conn_password") or None,
        schema=entry.get("conn_schema") or None,
        extra=_text(extra) if extra not in (None, "", {}) else None,
    )


def _pool(entry: dict, where: str) -> PoolSetting:
    slots = entry.get("pool_slot")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
        raise SettingsFileError(f"{where}: pool_slot must be a whole number >= 0, got {slots!r}")
    return PoolSetting(str(entry["pool_name"]), slots, str(entry.get("pool_description") or ""))


def apply(wanted: AirflowSettings) -> dict[str, int]:
    """Upsert everything into the configured Airflow metadata DB; returns counts per kind."""
    # The ORM models, not airflow.sdk's: this runs as a metadata-DB client, not inside a task.
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        for item in wanted.connections:
            conn = session.scalar(select(Connection).where(Connection.conn_id == item.conn_id))
            if conn is None:
                conn = Connection(conn_id=item.conn_id)
                session.add(conn)
            conn.conn_type, conn.host, conn.port = item.conn_type, item.host, item.port
            conn.login, conn.schema = item.login, item.schema
            conn.password, conn.extra = item.password, item.extra
        for pool in wanted.pools:
            Pool.create_or_update_pool(
                pool.name, pool.slots, pool.description, include_deferred=False, session=session
            )
        for key, value in wanted.variables.items():
            if value == "" and session.scalar(select(Variable.id).where(Variable.key == key)) is not None:
                continue  # an empty value declares the variable; it never erases one set in the UI
            Variable.set(key, value, session=session)
    return {"connections": len(wanted.connections), "pools": len(wanted.pools), "variables": len(wanted.variables)}


def admin_login(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The admin user to create from the env file, or None when neither variable is set."""
    username, password = (environ.get(name, "") for name in ADMIN_VARS)
    if not username and not password:
        return None
    if not username or not password:
        missing = ADMIN_VARS[0] if not username else ADMIN_VARS[1]
        raise SettingsFileError(f"{missing} is empty; set both {ADMIN_VARS[0]} and {ADMIN_VARS[1]} (env file)")
    return username, password


def ensure_admin(username: str, password: str, email: str | None = None) -> str:
    """Create the FAB user with role Admin, or reset its password and role; returns 'created' or 'updated'.

    `airflow users create` leaves an existing user as it is, so a changed password in the
    env file would never apply; FAB's security manager does both cases.
    """
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        manager = appbuilder.sm
        role = manager.find_role("Admin")
        user = manager.find_user(username=username)
        if user is None:
            created = manager.add_user(
                username, "Continuum", "Admin", email or f"{username}@example.invalid", role, password
            )
            if not created:
                raise RuntimeError(f"FAB refused to create user {username!r}; see the log above")
            return "created"
        manager.reset_password(user.id, password)
        if role not in user.roles:
            user.roles.append(role)
            manager.update_user(user)
        return "updated"


def uses_fab() -> bool:
    from airflow.configuration import conf

    return conf.get("core", "auth_manager") == FAB_AUTH_MANAGER


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else DEFAULT_FILE
    try:
        counts = apply(load(path))
        login = admin_login(os.environ)
    except SettingsFileError as exc:
        print(f"continuum: {exc}", file=sys.stderr)
        return 2
    print("event=airflow_settings_loaded file={} {}".format(path, " ".join(f"{k}={v}" for k, v in counts.items())))
    if login and uses_fab():
        outcome = ensure_admin(*login, email=os.environ.get("_AIRFLOW_WWW_USER_EMAIL") or None)
        print(f"event=admin_user_{outcome} auth_manager=fab")
    elif login:
        print("event=admin_user_skipped reason=auth_manager_is_not_fab")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
