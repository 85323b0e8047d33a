"""Where Continuum keeps things, from the environment.

Only Continuum's own names live here. S3 and MLflow endpoints are read by boto3
(`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`) and MLflow (`MLFLOW_TRACKING_URI`)
themselves, so the same code runs against the embedded platform, MinIO or AWS.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def home() -> Path:
    """Local state (`CONTINUUM_HOME`, default `.continuum/` in the repository)."""
    return Path(os.environ.get("CONTINUUM_HOME") or REPO_ROOT / ".continuum").resolve()


def bucket() -> str:
    """The bucket that holds landing, batches, validated, quarantine and scores."""
    return os.environ.get("CONTINUUM_BUCKET", "continuum")


def mlflow_bucket() -> str:
    """The bucket MLflow stores artefacts in when its artefact store is S3."""
    return os.environ.get("CONTINUUM_MLFLOW_BUCKET", "continuum-mlflow")


def dags_dir() -> Path:
    return REPO_ROOT / "dags"


def plugins_dir() -> Path:
    return REPO_ROOT / "plugins"
