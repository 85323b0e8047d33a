"""docker-compose's `airflow-init`, run for real on the local PostgreSQL: pools, connections,
variables and the FAB admin user exist afterwards, so no gate or training task waits forever
for a pool on the deployed stack. There is no Docker here, so the test runs the init's
settings-loader line (parsed from docker-compose.yaml) after `airflow db migrate`, which the
image's entrypoint runs first.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from continuum.local import airflow_settings, environment

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN = ("ops_admin", f"pw-{uuid.uuid4().hex}")


def compose_init() -> tuple[list[str], dict[str, str]]:
    """The loader command of airflow-init (image paths mapped to this checkout) and its Airflow settings."""
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    init = compose["services"]["airflow-init"]
    script = "\n".join(str(part) for part in init["command"])
    line = next(line for line in script.splitlines() if "continuum.local.airflow_settings" in line)
    command = shlex.split(line.strip().removeprefix("/entrypoint "))
    assert command[0] == "python", f"airflow-init runs the loader as {command[0]!r}, not python"
    command = [sys.executable, *(arg.replace("/opt/airflow/", f"{REPO}/") for arg in command[1:])]
    wanted = ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__LOAD_EXAMPLES")
    return command, {k: str(v) for k, v in init["environment"].items() if k in wanted}


@pytest.fixture
def fresh_database():
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        if os.environ.get("CONTINUUM_REQUIRE_SERVICES") == "1":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CONTINUUM_REQUIRE_SERVICES=1")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    import psycopg2

    name = f"continuum_test_init_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=240)
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_compose_init_creates_pools_connections_variables_and_the_admin(fresh_database, tmp_path):
    from cryptography.fernet import Fernet

    command, compose_env = compose_init()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env |= compose_env | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": fresh_database,
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        environment.ADMIN_USER_VARS[0]: ADMIN[0],
        environment.ADMIN_USER_VARS[1]: ADMIN[1],
    }
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == environment.FAB_AUTH_MANAGER
    run([str(BIN / "airflow"), "db", "migrate"], env)  # what the image's entrypoint does first

    output = run(command, env)
    assert "event=admin_user_created" in output, output
    assert "event=admin_user_updated" in run(command, env)  # init runs at every `compose up`: idempotent

    wanted = airflow_settings.load(REPO / "airflow_settings.yaml")
    code = (
        "import json\n"
        "from airflow.models import Connection, Pool, Variable\n"
        "from airflow.utils.session import create_session\n"
        "from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder\n"
        "with create_session() as s:\n"
        "    found = {'pools': {p.pool: p.slots for p in s.query(Pool)},\n"
        "             'connections': [c.conn_id for c in s.query(Connection)],\n"
        "             'variables': [v.key for v in s.query(Variable)]}\n"
        "from werkzeug.security import check_password_hash\n"
        "with get_application_builder() as ab:\n"
        f"    user = ab.sm.find_user(username={ADMIN[0]!r})\n"
        f"    ok = user is not None and check_password_hash(user.password, {ADMIN[1]!r})\n"
        "    found['admin_roles'] = [r.name for r in user.roles] if ok else None\n"
        "print('RESULT=' + json.dumps(found))\n"
    )
    output = run([sys.executable, "-c", code], env)
    found = __import__("json").loads(re.search(r"^RESULT=(.*)$", output, re.MULTILINE)[1])
    assert {p.name: p.slots for p in wanted.pools}.items() <= found["pools"].items()
    assert {"continuum_training", "continuum_validation"} <= set(found["pools"])
    assert {c.conn_id for c in wanted.connections} <= set(found["connections"])
    assert set(wanted.variables) <= set(found["variables"])
    assert found["admin_roles"] == ["Admin"], "the admin from the env file cannot log in with its password"
