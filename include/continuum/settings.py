"""Where Continuum keeps things, and how its clients behave, from the environment.

Only Continuum's own names live here. S3 and MLflow endpoints are read by boto3
(`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`) and MLflow (`MLFLOW_TRACKING_URI`)
themselves, so the same code runs against the embedded platform, MinIO or AWS.

Client retries and timeouts are set here, explicitly, because the libraries'
defaults hang for minutes when a service is down (MLflow retries 7 times with a
120 s timeout; boto3's legacy mode waits 60 s per read), and Airflow's own task
retries multiply that. The budget: one MLflow or S3 call gives up in about 1.5
minutes at most, then the task fails and Airflow retries it with backoff.
`apply_client_env()` puts them in `os.environ`; the package runs it on import, so
the CLI, every task process and the tests get the same values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Defaults for the libraries' own variables; a value the user has set wins.
CLIENT_ENV: dict[str, str] = {
    # MLflow REST calls: 3 attempts of at most 30 s, backoff 0 s then ~2 s (urllib3 Retry).
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "1.0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # boto3 clients Continuum does not build itself (MLflow's S3 artefact store) read these.
    "AWS_MAX_ATTEMPTS": "3",
    "AWS_RETRY_MODE": "standard",
    # Continuum's own S3 client (storage.client): per-attempt socket timeouts, seconds.
    "CONTINUUM_S3_CONNECT_TIMEOUT": "5",
    "CONTINUUM_S3_READ_TIMEOUT": "30",
    # litellm (for GEPA; MLflow's genai evaluation and trace costs import it too when installed)
    # fetches a model price list from GitHub at import unless told to use its bundled copy.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # MLflow's judges price each call from a model catalog fetched from GitHub (3 tries with
    # backoff when offline, once per process): no fetch; the judge's cost is then not priced.
    "MLFLOW_MODEL_CATALOG_URI": "",
}
TASK_TIMEOUT_MINUTES = 30
RETRY_DELAY_SECONDS = 30  # Airflow's first retry delay; doubles per try (exponential backoff) up to:
MAX_RETRY_DELAY_MINUTES = 10
# Security settings: always these values, whatever the environment says. Loading a model
# with pickle runs code from the artefact; Continuum loads skops models with its own
# allow-list of types (model_loading.py) and never needs MLflow's pickle path.
PINNED_ENV: dict[str, str] = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}


def home() -> Path:
    """Local state (`CONTINUUM_HOME`, default `.continuum/` in the repository)."""
    return Path(os.environ.get("CONTINUUM_HOME") or REPO_ROOT / ".continuum").resolve()


def bucket() -> str:
    """The bucket that holds landing, batches, validated, quarantine and scores."""
    return os.environ.get("CONTINUUM_BUCKET", "continuum")


def mlflow_bucket() -> str:
    """The bucket MLflow stores artefacts in when its artefact store is S3."""
    return os.environ.get("CONTINUUM_MLFLOW_BUCKET", "continuum-mlflow")


LANDING_MODES = ("poll", "events")
# The Airflow connection the SQS trigger uses (conn_type aws). Always named, never the
# inherited `aws_default`: the embedded platform sets it to its own endpoint.
LANDING_EVENTS_CONN_ID = "continuum_landing_events"


def landing_mode(environ: Mapping[str, str] | None = None) -> str:
    """`landing.mode` (`CONTINUUM_LANDING_MODE`): `poll` (default) or `events`.

    An environment variable, not an Airflow Variable: it changes which DAGs exist and how
    often the land DAGs run, so it is read at parse time, where a Variable costs a call
    to the metadata database on every parse.
    """
    environ = os.environ if environ is None else environ
    mode = (environ.get("CONTINUUM_LANDING_MODE") or "poll").strip().lower()
    if mode not in LANDING_MODES:
        raise ValueError(f"CONTINUUM_LANDING_MODE={mode!r} is not a landing mode; set it to poll or events")
    return mode


def landing_queue() -> str:
    """The SQS queue URL that S3 notifies of new landing objects (`CONTINUUM_LANDING_QUEUE`, events mode)."""
    url = os.environ.get("CONTINUUM_LANDING_QUEUE", "").strip()
    if not url:
        raise ValueError(
            "CONTINUUM_LANDING_MODE=events needs CONTINUUM_LANDING_QUEUE, the URL of the SQS queue that "
            "receives the bucket's ObjectCreated notifications for landing/"
        )
    return url


def landing_poll_interval() -> timedelta:
    """How often `<domain>_land` scans (`CONTINUUM_LANDING_POLL_MINUTES`): 1, or 10 in events mode (the safety net)."""
    default = "10" if landing_mode() == "events" else "1"
    raw = os.environ.get("CONTINUUM_LANDING_POLL_MINUTES") or default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"CONTINUUM_LANDING_POLL_MINUTES={raw!r} is not a positive whole number of minutes")
    return timedelta(minutes=int(raw))


def landing_scan_grace() -> timedelta:
    """In events mode the scan leaves files younger than this to their event (none in poll mode).

    The scan is the safety net there: it registers what no message announced, and keeping
    off the newest files keeps it from racing the event path for every file.
    `CONTINUUM_LANDING_SCAN_GRACE_SECONDS` (default 60) is for a triggerer or workers so busy
    that an event takes longer than that to be registered.
    """
    if landing_mode() != "events":
        return timedelta(0)
    raw = os.environ.get("CONTINUUM_LANDING_SCAN_GRACE_SECONDS") or "60"
    if not raw.isdigit():
        raise ValueError(f"CONTINUUM_LANDING_SCAN_GRACE_SECONDS={raw!r} is not a whole number of seconds")
    return timedelta(seconds=int(raw))


def dags_dir() -> Path:
    return REPO_ROOT / "dags"


def plugins_dir() -> Path:
    return REPO_ROOT / "plugins"


def client_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The client variables a process with `environ` must get (the user's tunables win, pins do not)."""
    return {k: v for k, v in CLIENT_ENV.items() if not environ.get(k)} | PINNED_ENV


def apply_client_env(environ: MutableMapping[str, str] | None = None) -> None:
    """Put `client_env` into `environ` (default: this process's environment)."""
    environ = os.environ if environ is None else environ
    environ.update(client_env(environ))


def _seconds(name: str) -> float:
    raw = os.environ.get(name) or CLIENT_ENV[name]
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds; set it to e.g. {CLIENT_ENV[name]}") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive; set it to e.g. {CLIENT_ENV[name]}")
    return value


def task_timeout() -> timedelta:
    """Airflow's `execution_timeout` for every task (`CONTINUUM_TASK_TIMEOUT_MINUTES`, default 30).

    Sized for the slowest ordinary task (training on a large batch takes minutes); an
    outage is caught long before by the client timeouts above.
    """
    raw = os.environ.get("CONTINUUM_TASK_TIMEOUT_MINUTES") or str(TASK_TIMEOUT_MINUTES)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"CONTINUUM_TASK_TIMEOUT_MINUTES={raw!r} is not a positive whole number of minutes")
    return timedelta(minutes=int(raw))


def retry_delay() -> timedelta:
    """Airflow's `retry_delay` for every task (`CONTINUUM_RETRY_DELAY_SECONDS`, default 30).

    Tests that let the real scheduler retry a task set it to a few seconds.
    """
    raw = os.environ.get("CONTINUUM_RETRY_DELAY_SECONDS") or str(RETRY_DELAY_SECONDS)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"CONTINUUM_RETRY_DELAY_SECONDS={raw!r} is not a positive whole number of seconds")
    return timedelta(seconds=int(raw))


def decision_lease_ttl() -> timedelta:
    """How long a domain's decision lease lives without renewal before another run may take it over.

    A run renews its lease at the start of every step, so the longest a live holder goes
    without renewing is one attempt of a step (at most `task_timeout()`, then Airflow kills
    it) plus the wait before its retry (at most `MAX_RETRY_DELAY_MINUTES`). A lease older
    than that belongs to a run that is gone (killed, marked failed by hand, a stopped
    platform). Clocks of the machines that run tasks must agree to well within this margin.
    """
    return task_timeout() + timedelta(minutes=MAX_RETRY_DELAY_MINUTES)


def s3_client_config():
    """botocore Config for Continuum's S3 client: bounded attempts and socket timeouts."""
    from botocore.config import Config

    attempts = os.environ.get("AWS_MAX_ATTEMPTS") or CLIENT_ENV["AWS_MAX_ATTEMPTS"]
    if not attempts.isdigit() or int(attempts) < 1:
        raise ValueError(f"AWS_MAX_ATTEMPTS={attempts!r} is not a positive integer; set it to e.g. 3")
    return Config(
        # total_max_attempts counts the first call, as AWS_MAX_ATTEMPTS does (max_attempts would not)
        retries={"total_max_attempts": int(attempts), "mode": os.environ.get("AWS_RETRY_MODE") or "standard"},
        connect_timeout=_seconds("CONTINUUM_S3_CONNECT_TIMEOUT"),
        read_timeout=_seconds("CONTINUUM_S3_READ_TIMEOUT"),
    )
