""".ci/run and the GitHub workflow: both run `make test` with the service tests required."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CI_RUN = REPO / ".ci" / "run"
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def test_ci_run_is_valid_bash():
    bash = shutil.which("bash")
    assert bash, "bash is needed to check .ci/run"
    result = subprocess.run([bash, "-n", str(CI_RUN)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f".ci/run is not valid bash: {result.stderr.strip()}"


def test_ci_run_is_executable_and_strict():
    assert os.access(CI_RUN, os.X_OK), ".ci/run is not executable (chmod +x .ci/run)"
    lines = CI_RUN.read_text().splitlines()
    assert lines[0] in ("#!/usr/bin/env bash", "#!/bin/bash"), ".ci/run must start with a bash shebang"
    assert "set -euo pipefail" in lines, ".ci/run must `set -euo pipefail`"


def test_ci_run_requires_services_and_runs_make_test():
    text = CI_RUN.read_text()
    assert "export CONTINUUM_REQUIRE_SERVICES=1" in text, ".ci/run must export CONTINUUM_REQUIRE_SERVICES=1"
    assert re.search(r"^[^#\n]*\bmake test\b", text, re.MULTILINE), ".ci/run does not run `make test`"


@pytest.mark.parametrize("probe", ["pg_isready -q -h 127.0.0.1", "redis-cli -h 127.0.0.1 ping"])
def test_ci_run_starts_services_only_when_they_do_not_answer(probe):
    assert f"! {probe}" in CI_RUN.read_text(), f".ci/run must start the service only when `{probe}` fails"


def test_ci_run_installs_chromium_only_when_it_is_missing():
    text = CI_RUN.read_text()
    guard = text.index("if [ ! -x /usr/bin/chromium ]; then")
    install = text.index("apt-get install -y -q chromium")
    assert guard < text.index("apt-get update -q") < install < text.index("make test || status"), (
        ".ci/run must run apt-get update, then install chromium, only when /usr/bin/chromium is missing, "
        "before make test"
    )


def test_workflow_runs_make_test_on_python_311_with_services():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow.get("jobs") or {}
    assert jobs, "ci.yml has no jobs"
    job = next(iter(jobs.values()))
    assert "ubuntu" in str(job.get("runs-on")), "ci.yml must run on ubuntu"
    assert {"postgres", "redis"} <= set(job.get("services", {})), "ci.yml needs postgres and redis services"
    assert str(job.get("env", {}).get("CONTINUUM_REQUIRE_SERVICES")) == "1", (
        "ci.yml must set CONTINUUM_REQUIRE_SERVICES=1"
    )
    steps = job.get("steps", [])
    pythons = [
        str(s.get("with", {}).get("python-version")) for s in steps if "setup-python" in s.get("uses", "")
    ]
    assert pythons == ["3.11"], f"ci.yml must set up Python 3.11, sets up {pythons}"
    runs = [s.get("run", "") for s in steps]
    assert any(re.search(r"\bmake test\b", run) for run in runs), "ci.yml does not run `make test`"


def _recipe(*args: str) -> str:
    """What `make test` would run (make -n: nothing runs), with the install step taken as done."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run([make, "-n", "-o", "install", "-o", ".venv/.installed", "test", *args],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_test_runs_the_integration_tests_beside_the_rest_and_fails_if_either_fails():
    recipe = _recipe()
    assert re.search(r"pytest -p no:cacheprovider tests/integration > \S+ 2>&1 &", recipe), recipe
    assert "pytest --ignore=tests/integration;" in recipe
    assert "test $rest -eq 0 -a $integration_status -eq 0" in recipe  # either failing fails the target
    assert recipe.index("wait $integration") < recipe.index("cat .pytest-integration.log")


def test_make_test_with_pytest_args_runs_just_those():
    recipe = _recipe("PYTEST_ARGS=tests/unit/test_ci_files.py")
    assert "pytest tests/unit/test_ci_files.py" in recipe and "tests/integration" not in recipe


def test_test_modules_have_unique_basenames():
    """tests/ has no __init__.py files, so pytest imports every test module by its basename:
    two files with one name stop the whole run at collection (CI failed that way once)."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path.name == "conftest.py" or "__pycache__" in path.parts:
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(REPO)} and {path.relative_to(REPO)}")
        seen.setdefault(path.name, path)
    assert not clashes, "test modules share a basename (rename one): " + "; ".join(clashes)
