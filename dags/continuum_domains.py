"""
# Continuum domain DAGs

Built from every domain spec in `include/domains/*.yaml` and in the directories of
`CONTINUUM_DOMAINS_PATH`. Each domain gets three DAGs linked by Assets:

| DAG | runs when | does |
|---|---|---|
| `<domain>_land` | every minute | registers files under `s3://<bucket>/landing/<domain>/` as batches |
| `<domain>_validate` | a batch is registered | GX gate: valid data to `validated/`, bad batches to `quarantine/` with a report |
| `<domain>_train` | a batch is validated | trains a scikit-learn pipeline, logs and registers it in MLflow |

This file only wires: the work is done by functions in the `continuum` package.
A spec that fails validation does not hide the others: it is reported by
`continuum_spec_errors.py` as an import error naming the file and the field.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from continuum_notifier import ContinuumNotifier

from continuum import settings
from continuum.specs import DomainSpec, load_domains

START = pendulum.datetime(2026, 1, 1, tz="UTC")
RUNBOOK = "docs/runbook.md"


def landed_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_landed", uri=f"s3://{settings.bucket()}/batches/{domain}/")


def validated_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_validated", uri=f"s3://{settings.bucket()}/validated/{domain}/")


def model_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_model", uri=f"mlflow://registered-models/{domain}")


def default_args(spec: DomainSpec) -> dict:
    return {
        "owner": spec.owner,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "on_failure_callback": ContinuumNotifier(),
    }


def batch_ids_param() -> dict[str, Param]:
    return {
        "batch_ids": Param(
            [],
            type="array",
            description="Batch ids to process. Empty: the batches named by the triggering asset events.",
        )
    }


def doc(spec: DomainSpec, kind: str, what: str, on_failure: str) -> str:
    return (
        f"# {spec.name} — {kind}\n\n{spec.description}\n\n**What it does.** {what}\n\n"
        f"**When it fails.** {on_failure} Every task retries twice before the owner "
        f"(`{spec.owner}`) is alerted. Reruns are safe: every task reads and writes only keys "
        f"derived from the batch id. See `{RUNBOOK}`.\n\n"
        f"Spec: `{spec.source}`."
    )


@task
def batches_to_process() -> list[str]:
    """The batch ids of this run: from the `batch_ids` param, else from the triggering asset events."""
    from continuum.batches import batch_ids_from_context

    ids = batch_ids_from_context(get_current_context())
    if not ids:
        raise AirflowSkipException("no batch ids in params or triggering asset events")
    return ids


def land_dag(spec: DomainSpec) -> DAG:
    landed = landed_asset(spec.name)

    @dag(
        dag_id=f"{spec.name}_land",
        schedule=timedelta(minutes=1),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[spec.name, "land"],
        default_args=default_args(spec),
        doc_md=doc(
            spec,
            "land",
            f"Every minute, registers each file under `landing/{spec.name}/` as a batch whose id is the "
            "hash of its bytes, and emits one asset event naming the new batch ids.",
            "Usually S3 is unreachable: check the endpoint (`AWS_ENDPOINT_URL`) and credentials.",
        ),
    )
    def land():
        @task(outlets=[landed])
        def register_landed() -> list[str]:
            """Register new landing files; skip (no asset event) when there are none."""
            from continuum.landing import register_landed as register

            batch_ids = register(spec.name)
            if not batch_ids:
                raise AirflowSkipException(f"no new files under landing/{spec.name}/")
            get_current_context()["outlet_events"][landed].extra = {"batch_ids": batch_ids}
            return batch_ids

        register_landed()

    return land()


def validate_dag(spec: DomainSpec) -> DAG:
    validated = validated_asset(spec.name)

    @dag(
        dag_id=f"{spec.name}_validate",
        schedule=[landed_asset(spec.name)],
        start_date=START,
        catchup=False,
        tags=[spec.name, "validate"],
        params=batch_ids_param(),
        default_args=default_args(spec),
        doc_md=doc(
            spec,
            "validate",
            "Runs the Great Expectations suite built from the spec's data contract on each new batch. "
            f"A valid batch is written typed to `validated/{spec.name}/`; a failing one is moved to "
            f"`quarantine/{spec.name}/<batch_id>/` with `report.json` naming every failed expectation, "
            "the owner is alerted and the task is skipped so nothing downstream runs for it.",
            "A quarantined batch is not a failure: read its report and land a corrected file. "
            "A failed task means the gate itself broke: read the task log.",
        ),
    )
    def validate():
        @task(outlets=[validated], pool="continuum_validation")
        def gate(batch_id: str) -> dict:
            """Validate one batch; quarantined batches end skipped, with no asset event."""
            from continuum.pipeline import run_gate

            outcome = run_gate(spec.name, batch_id)
            if outcome["quarantined"]:
                raise AirflowSkipException(f"batch {batch_id} quarantined: {outcome['reason']}")
            get_current_context()["outlet_events"][validated].extra = {"batch_ids": [batch_id]}
            return outcome

        gate.expand(batch_id=batches_to_process())

    return validate()


def train_dag(spec: DomainSpec) -> DAG:
    model = model_asset(spec.name)

    @dag(
        dag_id=f"{spec.name}_train",
        schedule=[validated_asset(spec.name)],
        start_date=START,
        catchup=False,
        tags=[spec.name, "train"],
        params=batch_ids_param(),
        default_args=default_args(spec),
        doc_md=doc(
            spec,
            "train",
            f"Trains the spec's estimator (`{spec.model.estimator}`) in a scikit-learn pipeline on each "
            "validated batch, logs parameters, metrics, datasets and the model to MLflow, and registers "
            f"it as a new version of the registered model `{spec.name}`.",
            "Check the MLflow server (`MLFLOW_TRACKING_URI`) and the task log; a bad estimator path or "
            "parameter in the spec is named in the error.",
        ),
    )
    def train():
        @task(outlets=[model], pool="continuum_training")
        def train_challenger(batch_id: str) -> dict:
            """Train on the validated batch and register the model; returns version and metrics."""
            from continuum.pipeline import run_training

            return run_training(spec.name, batch_id)

        train_challenger.expand(batch_id=batches_to_process())

    return train()


specs, _errors = load_domains()  # errors are raised by continuum_spec_errors.py
for _spec in specs:
    for _build in (land_dag, validate_dag, train_dag):
        _build(_spec)
