"""The plugin's FastAPI app (plugins/continuum_view.py) through Starlette's TestClient."""

from __future__ import annotations

import socket

import pytest
import yaml

from continuum import settings
from continuum.storage import Keys

DOMAIN = "insurance_fraud"
BATCH = "0123456789abcdef"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def view(monkeypatch):
    # Airflow puts plugins/ on sys.path when it is first imported; an earlier test's
    # monkeypatch may have restored sys.path since, so say it here as the API server does.
    monkeypatch.syspath_prepend(str(settings.plugins_dir()))
    import continuum_view

    return continuum_view


@pytest.fixture
def client(view):
    from fastapi.testclient import TestClient

    view.app.dependency_overrides[view.signed_in] = lambda: None
    yield TestClient(view.app)
    view.app.dependency_overrides.clear()


def test_the_plugin_mounts_the_app_and_links_it_in_the_navigation(view):
    from airflow.plugins_manager import AirflowPlugin

    plugin = view.ContinuumViewPlugin
    assert issubclass(plugin, AirflowPlugin) and plugin.name == "continuum_view"
    assert plugin.fastapi_apps == [{"app": view.app, "url_prefix": "/continuum", "name": "Continuum"}]
    (link,) = plugin.external_views
    assert link["href"] == "continuum/" and link["url_route"] == "continuum" and link["destination"] == "nav"


def test_the_page_lists_every_domain_allows_no_script_and_escapes_a_hostile_spec(client, s3, tmp_path, monkeypatch):
    spec = yaml.safe_load((settings.REPO_ROOT / "include" / "domains" / f"{DOMAIN}.yaml").read_text())
    (tmp_path / "hostile_domain.yaml").write_text(yaml.safe_dump(spec | {"name": "hostile_domain", "owner": HOSTILE}))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))

    answer = client.get("/")

    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "script-src" not in answer.headers["content-security-policy"]
    for name in ("insurance_claim_risk", "insurance_fraud", "retail_recommender", "hostile_domain", "claims_assistant"):
        assert f"id='domain-{name}'" in answer.text or f"id='assistant-{name}'" in answer.text
    assert HOSTILE not in answer.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text


def test_a_drift_report_is_streamed_sandboxed(client, s3):
    s3.put_bytes(Keys(DOMAIN).drift_report(BATCH), b"<html>drift of the batch</html>", "text/html")
    answer = client.get(f"/reports/{DOMAIN}/{BATCH}/drift")
    assert answer.status_code == 200 and answer.text == "<html>drift of the batch</html>"
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"].startswith("sandbox allow-scripts")
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_a_validation_report_is_served_as_json(client, s3):
    s3.put_json(Keys(DOMAIN).validation_report(BATCH), {"outcome": {"success": True}})
    answer = client.get(f"/reports/{DOMAIN}/{BATCH}/validation")
    assert answer.status_code == 200 and answer.json() == {"outcome": {"success": True}}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/reports/{DOMAIN}/not-a-batch-id!/drift", 400),
        (f"/reports/{DOMAIN}/0123456789ABCDEF/drift", 400),
        (f"/reports/{DOMAIN}/..%2F..%2F..%2Fsecrets/drift", 404),
        (f"/reports/{DOMAIN}/{BATCH}%2F..%2F..%2Fx/drift", 404),
        (f"/reports/no_such_domain/{BATCH}/drift", 404),
        (f"/reports/{DOMAIN}/{BATCH}/raw", 404),
    ],
)
def test_anything_but_a_known_domain_a_batch_id_and_a_report_kind_never_reaches_s3(client, monkeypatch, path, status):
    from continuum import storage

    def never(key, *args, **kwargs):
        raise AssertionError(f"S3 was asked for {key}")

    monkeypatch.setattr(storage, "stream", never)
    answer = client.get(path)
    assert answer.status_code == status, answer.text


def test_a_missing_report_says_which_and_where(client, s3):
    answer = client.get(f"/reports/{DOMAIN}/{BATCH}/drift")
    assert answer.status_code == 404
    assert answer.json()["detail"] == (
        f"batch {BATCH} of {DOMAIN} has no drift report (yet): s3://continuum/batches/{DOMAIN}/{BATCH}/drift.html"
    )


def test_s3_down_is_a_503_that_says_so(client, s3, monkeypatch):
    from continuum import storage

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage.client.cache_clear()
    try:
        answer = client.get(f"/reports/{DOMAIN}/{BATCH}/drift")
    finally:
        storage.client.cache_clear()
    assert answer.status_code == 503
    assert answer.text == f"S3 at http://127.0.0.1:{port} is unreachable: start it or set AWS_ENDPOINT_URL"


def test_only_a_signed_in_user_gets_the_page_or_a_report(view, s3, airflow_db):
    """Airflow does not authenticate plugin apps: the app asks Airflow's auth manager itself."""
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    s3.put_bytes(Keys(DOMAIN).drift_report(BATCH), b"<html>r</html>", "text/html")
    manager = init_auth_manager()
    try:
        token = manager.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
        client = TestClient(view.app)
        path = f"/reports/{DOMAIN}/{BATCH}/drift"
        assert client.get(path).status_code == 401
        assert client.get("/").status_code == 401
        assert client.get(path, cookies={"_token": "forged"}).status_code == 403
        assert client.get(path, cookies={"_token": token}).status_code == 200  # the UI's session cookie
        assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        purge_cached_app()


def test_importing_the_plugin_imports_nothing_heavy():
    """Every Airflow component imports plugins/: the page's dependencies load only when it is served."""
    import subprocess
    import sys

    heavy = ("pandas", "numpy", "sklearn", "mlflow", "evidently", "great_expectations", "boto3", "continuum.overview",
             "airflow.api_fastapi.core_api.security")
    code = (
        "import sys, airflow, continuum_view\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1:] in ([], [""]), f"imported at plugin import: {result.stdout}"
