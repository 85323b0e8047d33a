"""Every DAG file imports cleanly and every DAG is fit for the on-call engineer.

Parsing goes through Airflow's own DagBag, as the DAG processor does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ("pandas", "numpy", "sklearn", "mlflow", "evidently", "great_expectations", "scipy", "boto3")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors


def test_every_shipped_domain_has_its_dags(dagbag):
    from continuum.specs import load_domains

    specs, _ = load_domains()
    assert specs, "no domain specs found in include/domains"
    for spec in specs:
        for kind in ("land", "decide"):
            assert f"{spec.name}_{kind}" in dagbag.dag_ids


def test_every_dag_is_fit_for_on_call(dagbag):
    assert dagbag.dags, "no DAGs were parsed"
    for dag_id, dag in dagbag.dags.items():
        assert dag.owner and dag.owner != "airflow", f"{dag_id}: no owner"
        assert len(dag.tags) >= 2, f"{dag_id}: tags must name the domain and the kind, got {dag.tags}"
        assert dag.doc_md and "When it fails" in dag.doc_md, f"{dag_id}: doc_md must tell on-call what to do"
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id}: retries={task.retries}"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id}: no failure callback"


# Who imports boto3 first: with the Amazon provider installed (the SQS trigger of event-driven
# landing), Airflow's own URI handler for s3:// assets imports the S3 hook, and so boto3, when a
# DAG file creates its first s3:// Asset (measured 0.7-1.3 s). That one importer is allowed.
_FIRST_BOTO3_IMPORTER = """
import builtins, sys, traceback
_import, first = builtins.__import__, []
def _spy(name, *args, **kwargs):
    if name.split(".")[0] == "boto3" and "boto3" not in sys.modules and not first:
        first.extend(f.filename for f in traceback.extract_stack() if "importlib" not in f.filename)
    return _import(name, *args, **kwargs)
builtins.__import__ = _spy
"""
ASSET_URI_HANDLER = "airflow/providers/amazon/aws/assets/s3.py"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_imports_at_parse_time(path):
    """Parsing a DAG file (done every 30 s) must not import the heavy libraries."""
    code = (
        _FIRST_BOTO3_IMPORTER
        + "import runpy\n"
        f"runpy.run_path({str(path)!r})\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        f"print(any(f.endswith({ASSET_URI_HANDLER!r}) for f in first) or next(reversed(first[:-1]), ''))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"{path.name} does not import: {result.stderr[-2000:]}"
    imported, boto3_by = result.stdout.splitlines()[-2:]
    if boto3_by == "True":  # imported by the provider's s3:// asset URI handler, not by Continuum
        imported = ",".join(m for m in imported.split(",") if m != "boto3")
    assert imported == "", f"{path.name} imports {imported} at parse time (boto3 first imported by {boto3_by})"


def test_decide_dags_run_one_at_a_time_and_batch_ids_param_is_a_hex_pattern(dagbag):
    from airflow.sdk.definitions.param import ParamValidationError

    from continuum.specs import load_domains

    for spec in load_domains()[0]:
        dag = dagbag.dags[f"{spec.name}_decide"]
        assert dag.max_active_runs == 1
        steps = ["next_batch", "gate", "monitor", "train", "promote", "score", "release_lease"]
        assert [t.task_id for t in dag.topological_sort()] == steps
        # the lease is given back whatever the steps did: a teardown of the task that took it
        release = dag.get_task("release_lease")
        assert release.is_teardown and dag.get_task("next_batch").is_setup
        param = dag.params.get_param("batch_ids")
        assert param.resolve(["0123456789abcdef"]) == ["0123456789abcdef"]
        with pytest.raises(ParamValidationError):
            param.resolve(["../../etc/passwd"])


def _deadline_of(dag):
    [deadline] = dag.deadline
    kwargs = deadline.callback.kwargs
    assert deadline.callback.path == "continuum_notifier.ContinuumNotifier" and kwargs["kind"] == "deadline_missed"
    return deadline, kwargs


def test_decide_and_prompt_eval_dags_page_their_owner_when_a_run_hangs(dagbag):
    from airflow import plugins_manager
    from airflow.serialization.serialized_objects import DagSerialization

    from continuum.llm.specs import load_assistants
    from continuum.specs import load_domains

    expected = [(s, f"{s.name}_decide", "score") for s in load_domains()[0]]
    expected += [(s, f"{s.name}_prompt_eval", "record") for s in load_assistants()[0]]
    for spec, dag_id, done_task in expected:
        dag = dagbag.dags[dag_id]
        deadline, kwargs = _deadline_of(dag)
        assert (kwargs["domain"], kwargs["owner"]) == (spec.name, spec.owner)
        assert spec.deadline_minutes is None  # the shipped specs size their deadlines from recent runs
        assert type(deadline.reference).__name__ == "RecentRuntimeDeadline"
        assert deadline.reference.done_task == done_task and done_task in dag.task_ids
    # What the scheduler gets: the custom reference by its class path, which the plugin registers.
    [encoded] = DagSerialization.to_dict(dagbag.dags[expected[0][1]])["dag"]["deadline"]
    class_path = encoded.get("__var", encoded)["reference"]["__class_path"]
    assert class_path in plugins_manager.get_deadline_references_plugins()


def test_the_spec_deadline_minutes_is_a_deadline_on_the_queued_time(spec_copy):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.deadline import DeadlineReference

    spec_copy("insurance_fraud", "deadline_probe", deadline_minutes=25)
    bag = DagBag(dag_folder=str(REPO / "dags" / "continuum_domains.py"))
    deadline, kwargs = _deadline_of(bag.dags["deadline_probe_decide"])
    assert deadline.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert deadline.interval == timedelta(minutes=25) and kwargs["facts"]["deadline_minutes"] == 25


def test_events_mode_adds_the_watched_land_events_dag_and_slows_the_scan_to_the_safety_net():
    """`CONTINUUM_LANDING_MODE=events`: a watcher on the SQS queue, `<domain>_land` every 10 minutes."""
    code = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(REPO / 'dags')!r})\n"
        "events = bag.dags['continuum_land_events']\n"
        "[asset] = events.timetable.asset_condition.objects\n"
        "[watcher] = asset.watchers\n"
        "print(json.dumps({'errors': {k: str(v)[-300:] for k, v in bag.import_errors.items()}, \n"
        "  'trigger': watcher.trigger.serialize(), 'outlets': [o.name for o in events.tasks[0].outlets],\n"
        "  'land': str(bag.dags['insurance_claim_risk_land'].timetable.delta)}))\n"
    )
    queue = "http://127.0.0.1:9/123456789012/continuum-landing"
    env = dict(os.environ, CONTINUUM_LANDING_MODE="events", CONTINUUM_LANDING_QUEUE=queue)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    classpath, kwargs = parsed["trigger"]
    assert classpath == "airflow.providers.amazon.aws.triggers.sqs.SqsSensorTrigger"
    assert kwargs["sqs_queue"] == queue and kwargs["aws_conn_id"] == "continuum_landing_events"
    assert parsed["outlets"] == ["continuum_landed"] and "0:10:00" in parsed["land"]


def test_events_mode_without_a_queue_is_an_import_error_that_names_the_variable():
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"print(list(DagBag(dag_folder={str(REPO / 'dags' / 'continuum_land_events.py')!r}).import_errors.values()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CONTINUUM_LANDING_QUEUE"} | {"CONTINUUM_LANDING_MODE": "events"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "needs CONTINUUM_LANDING_QUEUE" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
