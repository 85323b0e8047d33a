"""airflow_settings.yaml (Astro CLI format): parsing, and idempotent upserts into Airflow."""

from __future__ import annotations

import uuid

import pytest

from continuum.local import airflow_settings
from continuum.local.airflow_settings import SettingsFileError


def test_the_shipped_file_declares_the_pools_and_the_alert_variable():
    loaded = airflow_settings.load(airflow_settings.DEFAULT_FILE)
    pools = {p.name: p.slots for p in loaded.pools}
    assert pools == {"continuum_training": 1, "continuum_validation": 2}
    assert loaded.variables["continuum_alert_webhook"] == ""
    assert "continuum_alert_routes" in loaded.variables  # parsed by tests/unit/test_alert_channels.py
    assert all(not c.password for c in loaded.connections)


def test_parse_reads_every_field_and_skips_blank_template_entries():
    document = {
        "airflow": {
            "connections": [
                {"conn_id": "llm_default", "conn_type": "http", "conn_host": "https://llm.example/v1",
                 "conn_port": 443, "conn_login": "me", "conn_schema": "https", "conn_extra": {"model": "m"}},
                {"conn_id": None, "conn_type": None},
            ],
            "pools": [{"pool_name": "p", "pool_slot": 3, "pool_description": "d"}, {"pool_name": ""}],
            "variables": [{"variable_name": "v", "variable_value": 5}, {"variable_name": "e", "variable_value": None}],
        }
    }
    parsed = airflow_settings.parse(document)
    (conn,) = parsed.connections
    assert (conn.conn_id, conn.conn_type, conn.host, conn.port, conn.login) == (
        "llm_default", "http", "https://llm.example/v1", 443, "me")
    assert conn.extra == '{"model": "m"}' and conn.password is None
    assert [(p.name, p.slots, p.description) for p in parsed.pools] == [("p", 3, "d")]
    assert parsed.variables == {"v": "5", "e": ""}


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"airflow": {"pools": [{"pool_name": "p", "pool_slot": "many"}]}}, "airflow.pools[0]: pool_slot"),
        ({"airflow": {"connections": [{"conn_id": "c"}]}}, "airflow.connections[0]: conn_type"),
        ({"airflow": {"connections": [{"conn_id": "c", "conn_type": "http", "conn_port": "x"}]}}, "conn_port"),
        ({"airflow": {"variables": "v"}}, "airflow.variables must be a list"),
        (["not", "a", "mapping"], "top-level 'airflow:'"),
    ],
)
def test_errors_name_the_file_and_the_entry(document, where):
    with pytest.raises(SettingsFileError, match="settings.yaml") as error:
        airflow_settings.parse(document, "settings.yaml")
    assert where in str(error.value)


def test_a_missing_file_loads_nothing(tmp_path):
    assert airflow_settings.load(tmp_path / "absent.yaml") == airflow_settings.AirflowSettings()


def test_invalid_yaml_says_which_file(tmp_path):
    path = tmp_path / "airflow_settings.yaml"
    path.write_text("airflow: [unclosed")
    with pytest.raises(SettingsFileError, match=str(path)):
        airflow_settings.load(path)


def test_apply_upserts_and_an_empty_variable_never_erases_a_value(airflow_db, tmp_path):
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    suffix = uuid.uuid4().hex[:8]
    conn_id, pool, var, webhook = f"llm_{suffix}", f"training_{suffix}", f"value_{suffix}", f"hook_{suffix}"

    def settings_file(host: str, slots: int, value: str) -> str:
        return f"""
airflow:
  connections:
    - {{conn_id: {conn_id}, conn_type: http, conn_host: {host}, conn_port: 8000}}
  pools:
    - {{pool_name: {pool}, pool_slot: {slots}, pool_description: training}}
  variables:
    - {{variable_name: {var}, variable_value: "{value}"}}
    - {{variable_name: {webhook}, variable_value: ""}}
"""

    path = tmp_path / "airflow_settings.yaml"
    path.write_text(settings_file("first.example", 1, "one"))
    airflow_settings.apply(airflow_settings.load(path))
    Variable.set(webhook, "https://hooks.example/set-in-ui")
    path.write_text(settings_file("second.example", 4, "two"))
    counts = airflow_settings.apply(airflow_settings.load(path))
    airflow_settings.apply(airflow_settings.load(path))  # idempotent: no duplicate rows, no error

    assert counts == {"connections": 1, "pools": 1, "variables": 2}
    with create_session() as session:
        conns = session.scalars(select(Connection).where(Connection.conn_id == conn_id)).all()
        assert [(c.conn_type, c.host, c.port) for c in conns] == [("http", "second.example", 8000)]
        pools = session.scalars(select(Pool).where(Pool.pool == pool)).all()
        assert [(p.slots, p.description) for p in pools] == [(4, "training")]
    assert Variable.get(var) == "two"
    assert Variable.get(webhook) == "https://hooks.example/set-in-ui"


def test_admin_login_comes_from_both_variables_or_none():
    user, password = airflow_settings.ADMIN_VARS
    assert airflow_settings.admin_login({}) is None
    assert airflow_settings.admin_login({user: "ops", password: "s3cret"}) == ("ops", "s3cret")
    with pytest.raises(SettingsFileError, match=password):
        airflow_settings.admin_login({user: "ops"})


def test_production_uses_fab_with_an_admin_and_make_run_keeps_the_simple_auth_manager(tmp_path):
    from continuum.local import environment

    secrets = {"jwt_secret": "j" * 64, "api_secret_key": "a", "fernet_key": "f"}
    production = environment.plan({"CONTINUUM_HOME": str(tmp_path)}, production=True, secrets=secrets).env
    embedded = environment.plan({"CONTINUUM_HOME": str(tmp_path)}, secrets=secrets).env
    assert production["AIRFLOW__CORE__AUTH_MANAGER"] == airflow_settings.FAB_AUTH_MANAGER
    assert airflow_settings.admin_login(production) == environment.ADMIN_LOGIN
    assert embedded["AIRFLOW__CORE__AUTH_MANAGER"] == environment.SIMPLE_AUTH_MANAGER
    assert airflow_settings.admin_login(embedded) is None
