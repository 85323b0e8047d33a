"""MLflow helpers shared by training, blessing and evaluation runs.

MLflow reads `MLFLOW_TRACKING_URI` itself; Continuum adds one variable,
`CONTINUUM_MLFLOW_ARTIFACTS` (e.g. `s3://continuum-mlflow/`), so that experiments
created by the platform keep their artefacts in S3 even when the tracking server
was started with a local default.
"""

from __future__ import annotations

import functools
import logging
import os
import re

from continuum import settings

log = logging.getLogger(__name__)

ARTIFACTS_ENV = "CONTINUUM_MLFLOW_ARTIFACTS"
# What a logged model needs to load again: the pins of these, taken from the lock.
MODEL_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "mlflow", "scipy", "joblib", "skops")


def artifact_location(experiment: str) -> str | None:
    """Where a new experiment's artefacts go: `$CONTINUUM_MLFLOW_ARTIFACTS/<experiment>`, or the server default."""
    root = os.environ.get(ARTIFACTS_ENV, "").strip()
    return f"{root.rstrip('/')}/{experiment}" if root else None


def ensure_experiment(name: str) -> str:
    """Make `name` the active experiment, creating (or restoring) it; returns its id.

    Two workers may create the same experiment at once; the loser finds the winner's.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(name, artifact_location=artifact_location(name))
            log.info("event=experiment_created experiment=%s id=%s", name, experiment_id)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
            log.info("event=experiment_restored experiment=%s id=%s", name, experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@functools.cache
def pip_requirements() -> tuple[str, ...]:
    """Pinned requirements of a logged sklearn model, read from the repository's lock.

    Passing them explicitly saves MLflow ~15 s of dependency inference per model.
    """
    lock = settings.REPO_ROOT / "requirements.txt"
    try:
        text = lock.read_text()
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot read {lock} to pin the model's requirements; run `make lock`"
        ) from exc
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1).lower())] = f"{match.group(1)}=={match.group(2)}"
    missing = [name for name in MODEL_REQUIREMENTS if name not in pins]
    if missing:
        raise ValueError(f"{lock} pins none of {missing}; add them to requirements.in and run `make lock`")
    return tuple(pins[name] for name in MODEL_REQUIREMENTS)


def logged_dict(run_id: str, name: str) -> dict | None:
    """The JSON artefact `name` at the root of run `run_id`, or None when the run has none.

    Absence is read from the run's artefact listing, so a store that cannot be reached
    raises (the task retries) instead of reading as "not logged".
    """
    import mlflow

    if name not in {entry.path for entry in mlflow.MlflowClient().list_artifacts(run_id)}:
        return None
    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{name}")


def keyed_run_id(experiment: str, kind: str, key: str, value: str, run_name: str, tags: dict[str, str]) -> str:
    """The id of the one run of `kind` whose tag `key` is `value`, created on first use.

    Found again by tag, so a retried task logs into the same run instead of a new one.
    """
    import mlflow

    experiment_id = ensure_experiment(experiment)
    client = mlflow.MlflowClient()
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`continuum.kind` = '{kind}' and tags.{key} = '{value}'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=run_name, tags={"continuum.kind": kind, key: value, **tags})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def batch_run_id(domain: str, batch_id: str) -> str:
    """The batch's own MLflow run (`batch-<batch_id>`): what monitoring saw and the final decision,
    so MLflow shows every batch, trained on or not."""
    return keyed_run_id(domain, "batch", "batch_id", batch_id, f"batch-{batch_id}", {"domain": domain})


def log_to_batch_run(
    domain: str,
    batch_id: str,
    metrics: dict[str, float] | None = None,
    texts: dict[str, str] | None = None,
) -> str:
    """Log metrics and text artefacts (HTML report, decision JSON) to the batch's run."""
    import math

    import mlflow

    run_id = batch_run_id(domain, batch_id)
    client = mlflow.MlflowClient()
    for key, value in (metrics or {}).items():
        if value is not None and not math.isnan(value):
            client.log_metric(run_id, key, float(value))
    for name, text in (texts or {}).items():
        client.log_text(run_id, text, name)
    return run_id
