"""docker-compose.yaml, Dockerfile and .env.example: the production stack is complete and holds no secret.

There is no Docker on the test machine, so these tests read the files: every service the
topology needs, the mounts and settings the DAGs rely on, and credentials only as ${VAR}.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from continuum.local.environment import TASK_HEARTBEAT_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
]
LONG_RUNNING_AIRFLOW = [s for s in AIRFLOW_SERVICES if s != "airflow-init"]
REQUIRED_SERVICES = ["postgres", "redis", *AIRFLOW_SERVICES, "mlflow", "minio", "minio-init"]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|ACCESS_KEY|REDISCLI_AUTH", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^:/@\s]*:(?P<password>\$\{[^}]*\}|[^@\s]+)@")
# ${NAME}, ${NAME:-default}, ${NAME:?message}; "$${NAME}" is an escape for the container's shell.
VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<modifier>:?[-?][^}]*)?\}")


def _env(service: str) -> dict[str, str]:
    environment = SERVICES[service].get("environment") or {}
    assert isinstance(environment, dict), f"{service}: write environment as a mapping, not a list"
    return {key: str(value) for key, value in environment.items()}


def _strings(node, path=""):
    """Every (path, key, string) in the parsed file, keys included as the last path element."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, path.rsplit(".", 1)[-1], node


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


@pytest.mark.parametrize("service", REQUIRED_SERVICES)
def test_required_service_is_defined(service):
    assert service in SERVICES, f"docker-compose.yaml has no service '{service}'"


def test_airflow_services_share_the_common_anchor_and_build_the_dockerfile():
    common = COMPOSE.get("x-airflow-common")
    assert common, "docker-compose.yaml has no x-airflow-common block"
    assert common.get("build") == ".", "x-airflow-common must `build: .` (the project's Dockerfile)"
    for service in AIRFLOW_SERVICES:
        assert SERVICES[service].get("build") == ".", f"{service} does not build the project's Dockerfile"


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
@pytest.mark.parametrize("folder", ["dags", "plugins", "include", "logs"])
def test_airflow_service_mounts_project_folder(service, folder):
    mounts = [str(m) for m in SERVICES[service].get("volumes", [])]
    wanted = re.compile(rf"(^|/)\.?/?{folder}:/opt/airflow/{folder}$|\}}/{folder}:/opt/airflow/{folder}$")
    assert any(wanted.search(m) for m in mounts), (
        f"{service} does not mount ./{folder} at /opt/airflow/{folder}"
    )


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_service_settings(service):
    env = _env(service)
    expected = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "AWS_ENDPOINT_URL": "http://minio:9000",
        # one heartbeat timeout for every production topology (up-prod, compose, Helm)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": TASK_HEARTBEAT_TIMEOUT,
    }
    for key, value in expected.items():
        assert env.get(key, "").lower() == value.lower(), (
            f"{service}: {key} should be {value}, is {env.get(key)}"
        )
    assert "airflow-apiserver" in env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""), (
        f"{service}: AIRFLOW__CORE__EXECUTION_API_SERVER_URL must point at airflow-apiserver"
    )
    assert "@redis:" in env.get("AIRFLOW__CELERY__BROKER_URL", ""), f"{service}: Celery broker is not redis"
    assert "@postgres/" in env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""), (
        f"{service}: metadata DB is not postgres"
    )


@pytest.mark.parametrize("service", [*AIRFLOW_SERVICES, "mlflow", "minio-init"])
def test_service_reads_credentials_from_env_file(service):
    env_file = SERVICES[service].get("env_file")
    files = env_file if isinstance(env_file, list) else [env_file]
    paths = [f["path"] if isinstance(f, dict) else f for f in files]
    assert ".env" in paths, f"{service} has no `env_file: .env`"


@pytest.mark.parametrize(
    ("service", "key"),
    [
        ("airflow-scheduler", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
        ("airflow-scheduler", "AIRFLOW__CELERY__RESULT_BACKEND"),
        ("airflow-scheduler", "AIRFLOW__CELERY__BROKER_URL"),
        ("mlflow", "MLFLOW_BACKEND_STORE_URI"),
    ],
)
def test_connection_urls_interpolate_their_password(service, key):
    match = URL_WITH_PASSWORD.search(_env(service).get(key, ""))
    assert match, f"{service}: {key} has no user:password@ part"
    assert VARIABLE.fullmatch(match["password"]), f"{service}: {key} password must be a ${{VAR}} from .env"


def test_no_literal_secret_anywhere_in_compose():
    for path, key, value in _strings(COMPOSE):
        if SECRET_NAME.search(key) and not key.endswith("_FILE") and value:
            assert "${" in value, f"docker-compose.yaml{path} is a literal secret; use ${{{key}}} from .env"
        for match in URL_WITH_PASSWORD.finditer(value):
            assert VARIABLE.fullmatch(match["password"]), (
                f"docker-compose.yaml{path} has a literal password in a URL; use ${{VAR}} from .env"
            )


def test_every_required_variable_is_in_env_example():
    example = _env_example()
    lines = (REPO / "docker-compose.yaml").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    required = {
        m["name"] for m in VARIABLE.finditer(text) if not (m["modifier"] or "").startswith((":-", "-"))
    }
    missing = sorted(name for name in required if name not in example)
    assert not missing, f".env.example lacks variables docker-compose.yaml needs: {missing}"


def test_env_example_holds_placeholders_only():
    text = (REPO / ".env.example").read_text()
    assert "cp .env.example .env" in text, ".env.example must say how to use it (cp .env.example .env)"
    for key, value in _env_example().items():
        if SECRET_NAME.search(key):
            assert value in ("", "change-me"), (
                f".env.example: {key} must be a placeholder (change-me), not a value"
            )


def test_env_file_is_kept_out_of_git_and_the_image():
    assert ".env" in (REPO / ".gitignore").read_text().split(), ".env is not in .gitignore"
    assert ".env" in (REPO / ".dockerignore").read_text().split(), ".env is not in .dockerignore"


@pytest.mark.parametrize("service", [*LONG_RUNNING_AIRFLOW, "postgres", "redis", "mlflow", "minio"])
def test_long_running_service_has_healthcheck(service):
    assert SERVICES[service].get("healthcheck", {}).get("test"), f"{service} has no healthcheck"


@pytest.mark.parametrize("service", LONG_RUNNING_AIRFLOW)
def test_airflow_service_waits_for_init_and_databases(service):
    depends = SERVICES[service].get("depends_on", {})
    wanted = {
        "airflow-init": "service_completed_successfully",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    for dependency, condition in wanted.items():
        actual = depends.get(dependency, {}).get("condition")
        assert actual == condition, f"{service} must depend on {dependency} with condition {condition}"


def test_mlflow_uses_its_own_postgres_and_s3_artifacts():
    command = " ".join(str(part) for part in SERVICES["mlflow"].get("command", []))
    env = _env("mlflow")
    assert "--default-artifact-root s3://continuum-mlflow/" in command, "mlflow must store artefacts in S3"
    assert env.get("MLFLOW_S3_ENDPOINT_URL") == "http://minio:9000", "mlflow needs MLFLOW_S3_ENDPOINT_URL"
    backend = env.get("MLFLOW_BACKEND_STORE_URI", "") + command
    assert "postgresql" in backend, "mlflow's backend store must be PostgreSQL"
    assert "@postgres/" not in backend or "mlflow" in backend.split("@postgres/")[1], (
        "mlflow must not share Airflow's metadata database"
    )


def test_minio_init_creates_both_buckets():
    command = " ".join(str(part) for part in SERVICES["minio-init"].get("command", []))
    for bucket in ("continuum/continuum", "continuum/continuum-mlflow"):
        assert re.search(rf"mc mb\b.*\b{bucket}(\s|$)", command), (
            f"minio-init does not create bucket {bucket}"
        )


def test_dockerfile_extends_airflow_3_3_on_python_3_11_and_installs_the_lock():
    text = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert base, "Dockerfile has no FROM line"
    assert re.fullmatch(r"apache/airflow:3\.3\.\d+-python3\.11", base[1]), (
        f"Dockerfile base image must be apache/airflow:3.3.x-python3.11, is {base[1]}"
    )
    assert re.search(r"pip install[^\n]*-r\s+\S*requirements\.txt", text), (
        "Dockerfile does not install requirements.txt"
    )
    assert "--constraint" not in text, "requirements.txt is a full lock: install it without constraints"
    assert re.search(r"pip install[^\n]*--no-deps", text), "Dockerfile does not install the continuum package"


# The one settings loader every deployment runs after `airflow db migrate` (see preflight.py).
LOADER = re.compile(r"python -m continuum\.local\.airflow_settings (?P<file>/opt/airflow/\S+)")


def init_loader_command() -> re.Match:
    """The settings-loader line of airflow-init's script (the test_init_* tests run it for real)."""
    script = "\n".join(str(part) for part in SERVICES["airflow-init"].get("command", []))
    match = LOADER.search(script)
    assert match, "airflow-init does not run `python -m continuum.local.airflow_settings <file>`"
    return match


def init_settings_file() -> Path:
    """The settings file airflow-init loads, as a path in this repository (the image copies the repo's)."""
    return REPO / init_loader_command()["file"].removeprefix("/opt/airflow/")


def test_init_loads_the_settings_file_with_the_same_loader_as_the_local_platform():
    from continuum.local import airflow_settings

    assert init_settings_file() == airflow_settings.DEFAULT_FILE, "init must load the repository's settings file"
    script = "\n".join(str(part) for part in SERVICES["airflow-init"]["command"])
    line = next(line for line in script.splitlines() if LOADER.search(line))
    assert line.strip().startswith("/entrypoint "), "run the loader through /entrypoint, which migrates the DB first"
    assert _env("airflow-init").get("_AIRFLOW_DB_MIGRATE") == "true", "airflow-init must migrate before loading"
    preflight_source = (REPO / "include/continuum/local/preflight.py").read_text()
    assert '"continuum.local.airflow_settings"' in preflight_source, "the local platform must use the same loader"


def test_the_settings_file_is_in_the_image_and_mounted_where_init_reads_it():
    target = init_loader_command()["file"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(rf"^COPY\b.*\bairflow_settings\.yaml {re.escape(target)}$", dockerfile, re.MULTILINE), (
        f"the Dockerfile does not copy airflow_settings.yaml to {target}"
    )
    mounts = [str(m) for m in SERVICES["airflow-init"].get("volumes", [])]
    assert any(re.search(rf"/airflow_settings\.yaml:{re.escape(target)}(:ro)?$", m) for m in mounts), (
        f"airflow-init does not mount ./airflow_settings.yaml at {target}"
    )


def test_every_pool_a_dag_uses_is_created_by_init():
    """Discovered from the DagBag: a task in a pool nobody creates waits forever on the deployed stack."""
    from airflow.dag_processing.dagbag import DagBag

    from continuum.local import airflow_settings

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.dags and not bag.import_errors, bag.import_errors
    used = {task.pool for dag in bag.dags.values() for task in dag.tasks} - {"default_pool"}
    assert used, "no DAG uses a pool: the gate and training tasks should"
    created = {pool.name for pool in airflow_settings.load(init_settings_file()).pools}
    assert used <= created, f"pools used by DAGs but not created by airflow-init: {sorted(used - created)}"


def test_the_stack_logs_in_with_fab_and_an_admin_from_the_env_file():
    from continuum.local import environment

    for service in AIRFLOW_SERVICES:
        assert _env(service).get("AIRFLOW__CORE__AUTH_MANAGER") == environment.FAB_AUTH_MANAGER, (
            f"{service} must use the FAB auth manager"
        )
    script = "\n".join(str(part) for part in SERVICES["airflow-init"]["command"])
    example = _env_example()
    for name in environment.ADMIN_USER_VARS:
        assert re.search(rf"\$\{{{name}:\?", script), f"airflow-init must stop when {name} is missing"
        assert name in example, f".env.example lacks {name}"
    assert example[environment.ADMIN_USER_VARS[1]] == "change-me"
    assert "apache-airflow-providers-fab" in (REPO / "requirements.txt").read_text()


def test_helm_values_run_the_same_image_settings_loader_and_auth():
    from continuum.local import environment

    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    init = " ".join(values["createUserJob"]["args"])
    assert init.endswith(init_loader_command()[0]), "the Helm init job must run compose's settings loader line"
    assert values["createUserJob"]["applyCustomEnv"], "the init job needs the admin variables from continuum-env"
    assert values["executor"] in ("CeleryExecutor", "KubernetesExecutor", "CeleryExecutor,KubernetesExecutor")
    assert values["executor"] != "CeleryExecutor" or values["workers"]["keda"]["enabled"]
    assert values["postgresql"]["enabled"] is False and values["pgbouncer"]["enabled"] is True
    assert values["data"]["metadataSecretName"], "the metadata DB URL must come from a Secret"
    assert values["config"]["core"]["auth_manager"] == environment.FAB_AUTH_MANAGER
    assert values["config"]["scheduler"]["task_instance_heartbeat_timeout"] == environment.TASK_HEARTBEAT_TIMEOUT
    assert values["airflowVersion"] == re.search(r"apache/airflow:(\d+\.\d+\.\d+)", (REPO / "Dockerfile").read_text())[1]
    names = {item["name"] for item in values["env"]}
    assert {"MLFLOW_TRACKING_URI", "CONTINUUM_BUCKET", "CONTINUUM_MLFLOW_ARTIFACTS"} <= names
    for path, key, value in _strings(values):
        secret_value = SECRET_NAME.search(key) and not key.endswith("SecretName")
        assert not (secret_value and value), f"deploy/helm/values.yaml{path} holds a secret"
