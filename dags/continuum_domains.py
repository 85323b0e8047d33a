"""
# Continuum domain DAGs

Built from every domain spec in `include/domains/*.yaml` and in the directories of
`CONTINUUM_DOMAINS_PATH`. Each domain gets two DAGs linked by an Asset:

| DAG | runs when | does |
|---|---|---|
| `<domain>_land` | every minute (every 10 with `CONTINUUM_LANDING_MODE=events`) | registers files under `s3://<bucket>/landing/<domain>/` as batches, queues them, and emits `<domain>_landed` while any batch waits; joins late labels landed under `labels/<domain>/` to the scores (`continuum.labels`) |
| `<domain>_decide` | `<domain>_landed` | one batch per run, the oldest waiting: gate, monitor, train, promote, score |

In events mode (`CONTINUUM_LANDING_MODE=events`), `continuum_land_events.py` registers a
file as soon as S3's notification reaches the triggerer and emits the same `<domain>_landed`;
the scan here then runs every 10 minutes as the safety net for lost messages.

`<domain>_decide` runs one at a time (`max_active_runs=1`), and a decision lease in S3
(`leases/<domain>/decide.json`) keeps `continuum ingest --run` (which runs the same DAG
with `dag.test()`) from deciding alongside it: so batches are decided and promoted in
arrival order and every decision is judged against the champion it will replace. A run
that finds another run's live lease skips: the batch stays queued and the land DAG wakes
this DAG again at its next scan. Skipping, rather than waiting or failing, keeps a busy
domain from filling the pools with waiting tasks or paging anyone.

The list of waiting batches lives in S3 (`queue/<domain>/`), not in the asset event:
Airflow drops events that arrive while the run is busy (apache/airflow#56050), and the
land DAG emits again the next minute while anything waits.

A `<domain>_decide` run that is not finished in time pages the owner (`deadline_missed`):
after the spec's `deadline_minutes`, or three times the mean runtime of its recent
decisions (two hours until three decisions are known).

This file only wires: the work is done by functions in the `continuum` package.
A spec that fails validation does not hide the others: it is reported by
`continuum_spec_errors.py` as an import error naming the file and the field.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Param, dag, get_current_context, get_parsing_context, task
from airflow.sdk.exceptions import AirflowSkipException

from continuum import approval, landing, settings
from continuum.specs import DomainSpec, load_domains
from continuum_notifier import deadline_alert, default_args

START = pendulum.datetime(2026, 1, 1, tz="UTC")
RUNBOOK = "docs/runbook.md"


def landed_asset(domain: str) -> Asset:
    return Asset(name=landing.landed_asset_name(domain), uri=f"s3://{settings.bucket()}/batches/{domain}/")


def model_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_model", uri=f"mlflow://registered-models/{domain}")


def scores_asset(domain: str) -> Asset:
    return Asset(name=f"{domain}_scores", uri=f"s3://{settings.bucket()}/scores/{domain}/")


def batch_ids_param() -> dict[str, Param]:
    from continuum.batches import BATCH_ID_PATTERN

    return {
        "batch_ids": Param(
            [],
            type="array",
            items={"type": "string", "pattern": BATCH_ID_PATTERN},
            description=(
                "Restrict this run to these batch ids (16 hex digits); it decides the oldest one still waiting. "
                "Empty: the oldest waiting batch of the domain."
            ),
        )
    }


def doc(spec: DomainSpec, kind: str, what: str, on_failure: str) -> str:
    return (
        f"# {spec.name} — {kind}\n\n{spec.description}\n\n**What it does.** {what}\n\n"
        f"**When it fails.** {on_failure} Every task retries twice before the owner "
        f"(`{spec.owner}`) is alerted. Clearing a task or the whole run is safe: every step records "
        "itself done in the batch's decision record and keys its side effects (model version, MLflow "
        f"run, S3 objects, aliases) by the batch id. See `{RUNBOOK}`.\n\n"
        f"Spec: `{spec.source}`."
    )


def land_dag(spec: DomainSpec) -> DAG:
    landed = landed_asset(spec.name)
    minutes = int(settings.landing_poll_interval().total_seconds() // 60)
    interval = "minute" if minutes == 1 else f"{minutes} minutes (events mode: `continuum_land_events` registers files as they land)"

    @dag(
        dag_id=f"{spec.name}_land",
        schedule=settings.landing_poll_interval(),  # 10 minutes in events mode: the safety net
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[spec.name, "land"],
        default_args=default_args(spec.owner),
        doc_md=doc(
            spec,
            "land",
            f"Every {interval}, registers each file under `landing/{spec.name}/` as a batch whose id is the "
            f"hash of its bytes and queues it under `queue/{spec.name}/`. While any batch waits for its "
            "decision it emits one asset event naming them, so an event Airflow dropped is sent again. "
            f"Beside it, `register_labels` joins labels files landed under `labels/{spec.name}/` to the "
            "scores already written and records the champion's realised metric per batch and segment "
            f"(`realised/{spec.name}/`); a bad labels file goes to `quarantine/{spec.name}/labels/`, and "
            "labels below the floor (or awaited by a retrain) are landed as a labelled batch.",
            "Usually S3 is unreachable: check the endpoint (`AWS_ENDPOINT_URL`) and credentials.",
        ),
    )
    def land():
        @task(outlets=[landed])
        def register_landed() -> list[str]:
            """Register new landing files; emit an event while batches wait, else skip (no event)."""
            from continuum.batches import pending
            from continuum.landing import register_landed as register

            new = register(spec.name, older_than=settings.landing_scan_grace())  # events mode: the safety net
            waiting = pending(spec.name)
            if not waiting:
                raise AirflowSkipException(f"no new files under landing/{spec.name}/ and no batch waiting")
            get_current_context()["outlet_events"][landed].extra = {"batch_ids": waiting, "new": new}
            return waiting

        @task(pool="continuum_validation")
        def register_labels() -> list[dict]:
            """Late labels: validate, join to the scores, realised metric; may land a labelled batch."""
            from continuum.labels import register_landed_labels

            return register_landed_labels(spec.name)

        # Side by side, not in a chain: a labels file that fails must not stop batches from landing.
        # A labelled batch it lands is registered by register_landed in this run or the next minute's.
        register_labels()
        register_landed()

    return land()


def decide_dag(spec: DomainSpec) -> DAG:
    model, scores = model_asset(spec.name), scores_asset(spec.name)

    @dag(
        dag_id=f"{spec.name}_decide",
        schedule=[landed_asset(spec.name)],
        start_date=START,
        catchup=False,
        max_active_runs=1,  # one decision at a time per domain: the serialisation point of promotions
        tags=[spec.name, "decide"],
        params=batch_ids_param(),
        default_args=default_args(spec.owner),
        # Pages the owner when a decision hangs: the spec's deadline_minutes, else sized from recent decisions.
        deadline=deadline_alert(
            spec.deadline_minutes, domain=spec.name, owner=spec.owner, what="decision run", done_task="score"
        ),
        doc_md=doc(
            spec,
            "decide",
            "Takes the domain's decision lease (or skips while another run, e.g. `continuum ingest "
            "--run`, holds it), then the oldest batch waiting in `queue/"
            f"{spec.name}/`, and decides it, one run per batch:\n\n"
            f"1. `gate`: the Great Expectations suite from the data contract; a valid batch goes typed to "
            f"`validated/{spec.name}/`, a failing one to `quarantine/{spec.name}/<batch_id>/` with "
            "`report.json`, the owner is alerted and the rest is skipped.\n"
            "2. `monitor`: Evidently drift against the champion's reference, and on labelled batches "
            f"the champion's `{spec.monitoring.primary_metric}` against the floor {spec.monitoring.floor}; "
            "decides `drift`, `performance`, `schedule` or `no_champion`. A retrain asked for on an "
            "unlabelled batch waits for the next labelled one (`waiting_for_labels`).\n"
            f"3. `train`: a challenger (`{spec.model.estimator}`) on the champion's window plus the new "
            "data, registered once per batch, judged against the champion on the same held-out rows "
            "(`champion_before` in the record).\n"
            + (
                "   `approve` (`blessing.approval: required`): a person approves the blessed challenger "
                "in Required actions or with `continuum approve`; a rejection or a timeout keeps the champion.\n"
                if approval.required(spec)
                else ""
            )
            + "4. `promote`: the registered artefact is loaded as scoring loads it and scores the batch "
            f"(shadow; refused on NaN, a failed load, or a score shift over {spec.blessing.max_score_shift}); "
            "then `champion` moves only if it is still `champion_before` (compare-and-set), the roles are "
            "read back, and a failed smoke test rolls back by itself.\n"
            f"5. `score`: `scores/{spec.name}/<batch_id>.parquet` with the champion (refused, and the task "
            "fails, on NaN, inf or a score outside its range: runbook \"Score check failed\"); the batch "
            "leaves the queue.\n"
            "6. `release_lease` (teardown, also after a failure): the next decision may start.",
            "The batch stays queued and blocks the ones after it (arrival order): fix the cause (MLflow, "
            f"S3) and clear the failed task, or run `continuum ingest {spec.name} <file> --run` again. "
            f"`continuum rollback {spec.name}` restores the previous champion if a bad model was promoted.",
        ),
    )
    def decide():
        def hold_lease(batch_id: str | None = None) -> None:
            """Take or renew this run's decision lease; skip (batch stays queued) while another run holds it."""
            from continuum import lease

            try:
                lease.acquire(spec.name, get_current_context()["run_id"], batch_id)
            except lease.LeaseHeld as held:
                raise AirflowSkipException(str(held)) from None

        @task(multiple_outputs=False)
        def next_batch() -> str:
            """Take the domain's decision lease, then the oldest waiting batch (among `batch_ids`); else skip."""
            from continuum import lease
            from continuum.batches import batch_ids_from_context
            from continuum.pipeline import claim_next

            context = get_current_context()
            among = batch_ids_from_context({"params": context["params"]})
            try:
                batch_id = claim_next(spec.name, context["run_id"], among or None)
            except lease.LeaseHeld as held:  # e.g. `continuum ingest --run` is deciding: not a failure
                raise AirflowSkipException(str(held)) from None
            if batch_id is None:
                raise AirflowSkipException(f"no batch of {spec.name} is waiting for a decision")
            return batch_id

        @task(pool="continuum_validation", multiple_outputs=False)
        def gate(batch_id: str) -> dict:
            """Validate the batch; a quarantined batch is finished here and the rest is skipped."""
            from continuum.alerts import task_location
            from continuum.pipeline import run_gate

            hold_lease(batch_id)
            outcome = run_gate(spec.name, batch_id, where=task_location(get_current_context()))
            if outcome["quarantined"]:
                raise AirflowSkipException(f"batch {batch_id} quarantined: {outcome['reason']}")
            return outcome

        @task(multiple_outputs=False)
        def monitor(batch_id: str) -> dict:
            """Drift and metric for the batch; records every retrain reason that holds."""
            from continuum.pipeline import run_monitor

            hold_lease(batch_id)
            return run_monitor(spec.name, batch_id)

        @task(pool="continuum_training", multiple_outputs=False)
        def train(batch_id: str) -> dict:
            """Train, register (once) and judge a challenger when the monitor asked for one."""
            from continuum.pipeline import run_training

            hold_lease(batch_id)
            return run_training(spec.name, batch_id)

        @task(outlets=[model], multiple_outputs=False)
        def promote(batch_id: str) -> dict:
            """Shadow-score, compare-and-set `champion`, read back, smoke-test (auto-rollback)."""
            from continuum.alerts import task_location
            from continuum.pipeline import run_promotion

            hold_lease(batch_id)
            context = get_current_context()
            context["outlet_events"][model].extra = {"batch_ids": [batch_id]}
            return run_promotion(spec.name, batch_id, where=task_location(context))

        @task(outlets=[scores], multiple_outputs=False)
        def score(batch_id: str) -> dict:
            """Score the batch with the champion; the batch's record is final and it leaves the queue."""
            from continuum.alerts import task_location
            from continuum.pipeline import run_scoring

            hold_lease(batch_id)
            context = get_current_context()
            context["outlet_events"][scores].extra = {"batch_ids": [batch_id]}
            return run_scoring(spec.name, batch_id, where=task_location(context))

        @task
        def release_lease() -> None:
            """Give the domain's decision lease back: after `score`, after a quarantine, and after a failure."""
            from continuum import lease

            lease.release(spec.name, get_current_context()["run_id"])

        batch_id = next_batch()
        steps = [gate(batch_id), monitor(batch_id), train(batch_id)]
        if approval.required(spec):  # a person signs off a blessed challenger first
            steps.append(approve_step(spec))
        steps += [promote(batch_id), score(batch_id)]
        for upstream, downstream in zip(steps, steps[1:], strict=False):
            upstream >> downstream
        # A teardown runs once its setup succeeded, whatever the steps did (Airflow setup/teardown),
        # and its own state does not decide the run's.
        steps[-1] >> release_lease().as_teardown(setups=batch_id)

    return decide()


def approve_step(spec: DomainSpec):
    """`approve`: the blessed challenger waits for a person (Airflow's ApprovalOperator) before `promote`."""
    from continuum_approval import ChallengerApproval

    return ChallengerApproval(
        task_id="approve",
        domain=spec.name,
        batch_id="{{ ti.xcom_pull(task_ids='next_batch') }}",
        response_timeout=approval.timeout(spec),
        doc_md=(
            "Asks the owner to approve the blessed challenger (`blessing.approval: required`): the request "
            "shows the comparison with the champion and the model card. Approve, or reject with a comment, in "
            f"Required actions, or run `continuum approve {spec.name} <batch_id> [--reject]`. No answer within "
            f"{spec.blessing.approval_timeout_hours:g} h rejects; the champion then stays. Nothing blessed: it "
            "returns at once."
        ),
    )


specs, _errors = load_domains()  # errors are raised by continuum_spec_errors.py
# A task process re-parses this file to find its one DAG: Airflow's task runner names it in the
# parsing context, so only that DAG is built (at 300 domains, one DAG instead of 600).
_only = get_parsing_context().dag_id
for _spec in specs:
    if _only in (None, f"{_spec.name}_land"):
        land_dag(_spec)
    if _only in (None, f"{_spec.name}_decide"):
        decide_dag(_spec)
