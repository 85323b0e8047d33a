"""
# Continuum domain DAGs

Built from every domain spec in `include/domains/*.yaml` and in the directories of
`CONTINUUM_DOMAINS_PATH`. Each domain gets five DAGs linked by Assets:

| DAG | runs when | does |
|---|---|---|
| `<domain>_land` | every minute | registers files under `s3://<bucket>/landing/<domain>/` as batches |
| `<domain>_validate` | a batch is registered | GX gate: valid data to `validated/`, bad batches to `quarantine/` with a report |
| `<domain>_monitor` | a batch is validated | Evidently drift and the champion's metric; decides whether to retrain |
| `<domain>_train` | a batch is monitored | challenger trained, registered, blessed against the champion, promoted |
| `<domain>_score` | the model decision is made | batch scoring with the champion after a smoke test |

This file only wires: the work is done by functions in the `continuum` package.
A spec that fails validation does not hide the others: it is reported by
`continuum_spec_errors.py` as an import error naming the file and the field.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from continuum import settings
from continuum.specs import DomainSpec, load_domains
from continuum_notifier import default_args

START = pendulum.datetime(2026, 1, 1, tz="UTC")
RUNBOOK = "docs/runbook.md"


def landed_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_landed", uri=f"s3://{settings.bucket()}/batches/{domain}/")


def validated_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_validated", uri=f"s3://{settings.bucket()}/validated/{domain}/")


def monitored_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_monitored", uri=f"s3://{settings.bucket()}/batches/{domain}/decisions/")


def model_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_model", uri=f"mlflow://registered-models/{domain}")


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
        default_args=default_args(spec.owner),
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
        default_args=default_args(spec.owner),
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
        @task(outlets=[validated], pool="continuum_validation", multiple_outputs=False)
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


def _per_batch_dag(
    spec: DomainSpec, kind: str, schedule: Asset, what: str, on_failure: str
):
    """Decorator arguments shared by the DAGs that process validated batches one mapped task each."""
    return dag(
        dag_id=f"{spec.name}_{kind}",
        schedule=[schedule],
        start_date=START,
        catchup=False,
        tags=[spec.name, kind],
        params=batch_ids_param(),
        default_args=default_args(spec.owner),
        doc_md=doc(spec, kind, what, on_failure),
    )


def monitor_dag(spec: DomainSpec) -> DAG:
    monitored = monitored_asset(spec.name)

    @_per_batch_dag(
        spec,
        "monitor",
        validated_asset(spec.name),
        "Compares each validated batch with the champion's reference data (Evidently data drift: share "
        "of drifted columns, per-column scores; HTML report next to the batch and in MLflow) and, on "
        f"labelled batches, measures the champion's `{spec.monitoring.primary_metric}` against the floor "
        f"{spec.monitoring.floor}. Decides whether to retrain: `drift`, `performance`, `schedule` "
        "(champion older than the spec's schedule) or `no_champion`.",
        "Usually the champion's reference or model cannot be loaded: check MLflow and S3, then clear the task.",
    )
    def monitor():
        @task(outlets=[monitored], multiple_outputs=False)
        def check_batch(batch_id: str) -> dict:
            """Drift and metric for one batch; records every retrain reason that holds."""
            from continuum.pipeline import run_monitor

            get_current_context()["outlet_events"][monitored].extra = {"batch_ids": [batch_id]}
            return run_monitor(spec.name, batch_id)

        check_batch.expand(batch_id=batches_to_process())

    return monitor()


def train_dag(spec: DomainSpec) -> DAG:
    model = model_asset(spec.name)

    @_per_batch_dag(
        spec,
        "train",
        monitored_asset(spec.name),
        f"When the batch's decision asks for retraining, trains a challenger (`{spec.model.estimator}` in a "
        "scikit-learn pipeline) on the champion's training window plus the new data, registers it in "
        "MLflow, and evaluates challenger and champion on the same held-out data. The challenger is "
        f"blessed only when it clears {spec.bless_floor} and is at most {spec.blessing.max_degradation} "
        "worse than the champion, and no segment falls below the floor; a blessed challenger gets the "
        "alias `champion` and the old one `previous`.",
        f"A failure leaves the champion unchanged. Check MLflow; `continuum rollback {spec.name}` restores "
        "the previous champion if a bad model was promoted.",
    )
    def train():
        @task(pool="continuum_training", multiple_outputs=False)
        def train_challenger(batch_id: str) -> dict:
            """Train and bless a challenger when the monitor asked for one; otherwise do nothing."""
            from continuum.pipeline import run_training

            return run_training(spec.name, batch_id)

        @task(outlets=[model], multiple_outputs=False)
        def promote(trained: dict) -> dict:
            """Move `champion` to a blessed challenger (old champion keeps `previous`)."""
            from continuum.pipeline import run_promotion

            get_current_context()["outlet_events"][model].extra = {"batch_ids": [trained["batch_id"]]}
            return run_promotion(spec.name, trained["batch_id"])

        promote.expand(trained=train_challenger.expand(batch_id=batches_to_process()))

    return train()


def score_dag(spec: DomainSpec) -> DAG:
    scores = Asset(name=f"{spec.name}_scores", uri=f"s3://{settings.bucket()}/scores/{spec.name}/")

    @_per_batch_dag(
        spec,
        "score",
        model_asset(spec.name),
        f"Loads `models:/{spec.name}@champion`, smoke-tests it on its reference sample, scores the batch "
        f"({spec.scoring.kind}) to `scores/{spec.name}/<batch_id>.parquet`, and attaches the batch's "
        "final decision record to its MLflow run.",
        "A failed smoke test means the champion cannot serve: roll back with "
        f"`continuum rollback {spec.name}` and clear the task.",
    )
    def score():
        @task(outlets=[scores], multiple_outputs=False)
        def score_batch(batch_id: str) -> dict:
            """Score one batch with the champion."""
            from continuum.pipeline import run_scoring

            return run_scoring(spec.name, batch_id)

        score_batch.expand(batch_id=batches_to_process())

    return score()


specs, _errors = load_domains()  # errors are raised by continuum_spec_errors.py
for _spec in specs:
    for _build in (land_dag, validate_dag, monitor_dag, train_dag, score_dag):
        _build(_spec)
