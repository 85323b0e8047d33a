"""The Airflow UI as a person sees it: headless Chromium through Playwright, on a running platform.

The browser is Debian's `chromium` (`/usr/bin/chromium`, or `CONTINUUM_CHROMIUM`), driven
through Playwright's `executable_path`; nothing downloads a browser. `.ci/run` installs
the package when it is missing. Without it a test skips with the reason, and fails under
`CONTINUUM_REQUIRE_SERVICES=1`.

Screenshots go to `$CONTINUUM_TEST_ARTIFACTS` (default: the test's tmp dir) and to
`.continuum-test-artifacts/` in the repository (ignored by git), and the paths are printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ENV = "CONTINUUM_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
ARTIFACTS_ENV = "CONTINUUM_TEST_ARTIFACTS"
STABLE_ARTIFACTS = REPO / ".continuum-test-artifacts"
TIMEOUT_MS = 120_000  # a busy 2-core machine: the first page view also imports MLflow in the API server


def chromium_or_skip() -> str:
    """The Chromium binary; skips the test when there is none (fails under CONTINUUM_REQUIRE_SERVICES=1)."""
    path = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    if os.access(path, os.X_OK):
        return path
    reason = (f"no Chromium at {path}: install Debian's package (apt-get install -y chromium, as .ci/run does) "
              f"or set {CHROMIUM_ENV}")
    if os.environ.get("CONTINUUM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}; CONTINUUM_REQUIRE_SERVICES=1 requires the browser tests")
    pytest.skip(reason)


class Artifacts:
    """Where screenshots go: the run's artifact directory and the stable one in the repository."""

    def __init__(self, tmp_path: Path, prefix: str):
        self.dirs = [Path(os.environ.get(ARTIFACTS_ENV) or tmp_path / "artifacts"), STABLE_ARTIFACTS]
        self.prefix = prefix
        for directory in self.dirs:
            directory.mkdir(parents=True, exist_ok=True)

    def screenshot(self, page, name: str, full_page: bool = False) -> Path:
        first = self.dirs[0] / f"{self.prefix}-{name}.png"
        page.screenshot(path=str(first), full_page=full_page)
        for directory in self.dirs[1:]:
            shutil.copyfile(first, directory / first.name)
        print(f"screenshot: {first} (and {STABLE_ARTIFACTS / first.name})")
        return first


@contextlib.contextmanager
def browser_page(executable: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def api(base: str, path: str, token: str) -> dict:
    request = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def check_plugin(base: str, token: str) -> None:
    """The continuum_view plugin is loaded, linked in the navigation, and its app asks for a login."""
    plugins = {p["name"]: p for p in api(base, "/api/v2/plugins", token)["plugins"]}
    assert "continuum_view" in plugins, f"plugin not loaded; loaded: {sorted(plugins)}"
    assert [v["url_route"] for v in plugins["continuum_view"]["external_views"]] == ["continuum"]
    assert not api(base, "/api/v2/plugins/importErrors", token)["import_errors"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/continuum/", timeout=30)
    assert refused.value.code == 401
    request = urllib.request.Request(f"{base}/continuum/", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_MS / 1000) as response:
        assert response.status == 200 and b"<h1>Continuum</h1>" in response.read()


def continuum_dags(base: str, token: str) -> dict[str, list[str]]:
    """Every DAG the specs make (as continuum_health counts them), with the tags Airflow holds for it."""
    from continuum import health

    expected = {dag for entry in health.names() for dag in entry["dags"]} | {"continuum_health"}
    listed = {d["dag_id"]: sorted(t["name"] for t in d["tags"]) for d in api(base, "/api/v2/dags?limit=1000", token)["dags"]}
    assert expected <= set(listed), f"not parsed: {sorted(expected - set(listed))}"
    return {dag: listed[dag] for dag in expected}


def last_finished_run(base: str, token: str, dag_id: str) -> str:
    runs = api(base, f"/api/v2/dags/{dag_id}/dagRuns?state=success&order_by=-end_date&limit=1", token)["dag_runs"]
    assert runs, f"{dag_id} has no finished run"
    return runs[0]["dag_run_id"]


def log_in(page, base: str, login: tuple[str, str]) -> None:
    """The login form of the configured auth manager (simple or FAB): both name the fields alike."""
    page.goto(f"{base}/")
    page.wait_for_url("**/login**")
    page.locator("input[name=username]").fill(login[0])
    page.locator("input[name=password]").fill(login[1])
    page.locator("[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)


def dag_list(page, base: str) -> dict[str, list[str]]:
    """The DAGs page: dag id -> the tags its card shows."""
    page.goto(f"{base}/dags")
    page.locator("[data-testid=dag-card]").first.wait_for()
    page.wait_for_load_state("networkidle")
    shown = {}
    for card in page.locator("[data-testid=dag-card]").all():
        dag_id = card.locator("[data-testid=dag-id]").inner_text().strip()
        shown[dag_id] = sorted(t.strip() for t in card.locator("a[href*='tags=']").all_inner_texts())
    return shown


def graph(page, base: str, dag_id: str, run_id: str) -> list[str]:
    """A run's page switched to the Graph view; returns the task ids of the graph's nodes."""
    page.goto(f"{base}/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}")
    page.locator("[title^='Show Graph']").click()
    page.locator(".react-flow__node").first.wait_for()
    page.wait_for_load_state("networkidle")
    return [text.split("\n")[0].strip() for text in page.locator(".react-flow__node").all_inner_texts()]


def continuum_page(page):
    """Follow the navigation's Continuum link; returns the frame the UI shows the page in."""
    page.get_by_role("link", name="Continuum").click()
    page.wait_for_url("**/plugin/continuum**")
    frame = page.frame_locator("iframe[title=Continuum]")
    frame.locator("h1").wait_for()
    page.wait_for_load_state("networkidle")
    return frame


def browse(page, base: str, token: str, login: tuple[str, str], artifacts: Artifacts, finished: tuple[str, str]):
    """Log in, every Continuum DAG with its tags, a finished run's graph, the Continuum page: its frame."""
    log_in(page, base, login)
    expected = continuum_dags(base, token)
    shown = dag_list(page, base)
    artifacts.screenshot(page, "dags")
    assert {dag: shown.get(dag) for dag in expected} == expected
    dag_id, run_id = finished
    nodes = graph(page, base, dag_id, run_id)
    artifacts.screenshot(page, "graph")
    assert nodes and all(nodes), nodes
    frame = continuum_page(page)
    artifacts.screenshot(page, "continuum")
    from continuum import health

    for name in (entry["name"] for entry in health.names()):
        assert frame.locator(f"#domain-{name}, #assistant-{name}").count() == 1, f"{name} is not on the page"
    return frame, nodes
