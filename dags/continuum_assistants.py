"""
# Continuum assistant DAGs (LLMOps)

Built from every assistant spec (`kind: assistant`) in `include/domains/` and in
`CONTINUUM_DOMAINS_PATH`. Each assistant gets two DAGs linked by an Asset:

| DAG | runs when | does |
|---|---|---|
| `<assistant>_conversations_land` | every minute | announces new JSONL logs under `s3://<bucket>/llm/conversations/<assistant>/` |
| `<assistant>_prompt_eval` | daily, and when new logs are announced | validates and redacts the logs (and, with `conversations: {kind: mlflow_traces}`, the window's MLflow traces; scores are written back on them as feedback) (the unredacted file is deleted, or kept `raw_retention_days`), scores every conversation, compares prompt versions with 95% confidence intervals, records an MLflow evaluation run per window and a decision per run; only the scheduled (or a manual) run moves the `production` alias and retires candidates, runs triggered by new logs report |

With an Airflow connection `llm_default` (an OpenAI-compatible endpoint) the evaluation
also has an MLflow judge (`make_judge`) rate the window's conversations before the
decision (it counts only while its Cohen's kappa with the users' ratings reaches
`judge.min_agreement`), replays conversations through candidate prompts and runs the
prompt optimiser; every LLM answer is cached by request, so a rerun calls nobody.
Without it those tasks skip with one log line.

An evaluation run that is not finished in time pages the owner (`deadline_missed`): after
the spec's `deadline_minutes`, or three times the mean runtime of its recent evaluations.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from continuum import settings
from continuum.llm.specs import AssistantSpec, load_assistants
from continuum_notifier import deadline_alert, default_args

START = pendulum.datetime(2026, 1, 1, tz="UTC")
SCHEDULE_PRESETS = {"@daily": "0 0 * * *", "@hourly": "0 * * * *", "@weekly": "0 0 * * 0"}


def conversations_asset(assistant: str) -> Asset:
    return Asset(name=f"{assistant}_conversations", uri=f"s3://{settings.bucket()}/llm/conversations/{assistant}/")


def doc(spec: AssistantSpec, what: str, on_failure: str) -> str:
    return (
        f"# {spec.name}\n\n{spec.description}\n\n**What it does.** {what}\n\n**When it fails.** {on_failure} "
        f"Every task retries twice before the owner (`{spec.owner}`) is alerted; every step is idempotent "
        f"for its window, so clearing a task is safe. See `docs/runbook.md`.\n\nSpec: `{spec.source}`."
    )


def land_dag(spec: AssistantSpec) -> DAG:
    asset = conversations_asset(spec.name)

    @dag(
        dag_id=f"{spec.name}_conversations_land",
        schedule=timedelta(minutes=1),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[spec.name, "land", "llm"],
        default_args=default_args(spec.owner),
        doc_md=doc(
            spec,
            f"Announces each new JSONL file under `llm/conversations/{spec.name}/` once, as an asset event.",
            "Usually S3 is unreachable: check `AWS_ENDPOINT_URL` and the credentials.",
        ),
    )
    def conversations_land():
        @task(outlets=[asset])
        def announce_new_logs() -> list[str]:
            """Skip (no event) when nothing new has landed."""
            from continuum.llm.intake import announce_new

            files = announce_new(spec.name)
            if not files:
                raise AirflowSkipException(f"no new logs under llm/conversations/{spec.name}/")
            get_current_context()["outlet_events"][asset].extra = {"files": files}
            return files

        announce_new_logs()

    return conversations_land()


def _window_end():
    """The evaluation window ends when the run was due (asset-triggered runs have no logical date)."""
    run = get_current_context()["dag_run"]
    return run.run_after or pendulum.now("UTC")


def _deciding() -> bool:
    """Scheduled and manual runs may promote; runs triggered by each new log file only report."""
    from continuum.llm.evaluation import may_promote

    return may_promote(get_current_context()["dag_run"].run_type)


def _llm_config():
    """The `llm_default` connection as an LLMConfig, or skip with one clear line."""
    from airflow.sdk import Connection

    from continuum.llm.backends import available, config_from_connection

    try:
        conn = Connection.get("llm_default")
    except Exception as exc:  # the SDK raises its own not-found error type
        raise AirflowSkipException(
            "no Airflow connection 'llm_default' (OpenAI-compatible endpoint): LLM replay, judge and "
            "optimiser skipped"
        ) from exc
    config = config_from_connection(
        {
            "host": conn.host,
            "port": conn.port,
            "schema": conn.schema,
            "login": conn.login,
            "password": conn.password,
            "extra": conn.extra,
        }
    )
    if config is None or not available(config):
        raise AirflowSkipException("connection 'llm_default' has no reachable endpoint: LLM tasks skipped")
    return config


def _cost_cap(spec: AssistantSpec) -> str:
    cap = spec.evaluation.max_cost_increase
    return "" if cap is None else f", raises mean cost per conversation by at most {cap:.0%}"


def eval_dag(spec: AssistantSpec) -> DAG:
    cron = SCHEDULE_PRESETS.get(spec.schedule or "@daily", spec.schedule or "0 0 * * *")

    @dag(
        dag_id=f"{spec.name}_prompt_eval",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[conversations_asset(spec.name)]
        ),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[spec.name, "prompt_eval", "llm"],
        default_args=default_args(spec.owner),
        # Pages the owner when an evaluation hangs: the spec's deadline_minutes, else sized from recent ones.
        deadline=deadline_alert(
            spec.deadline_minutes, domain=spec.name, owner=spec.owner, what="prompt evaluation run", done_task="record"
        ),
        doc_md=doc(
            spec,
            f"Validates every logged line (bad ones to `quarantine/llm/{spec.name}/` with the reason), "
            "redacts personal data before anything is stored or scored, scores every conversation "
            "(outcome, feedback, rules, safety, similarity, cost, latency), compares prompt versions "
            f"with 95% confidence intervals, and promotes a candidate to `production` only when it beats "
            f"production on `{spec.primary_score}` with that confidence, is non-inferior on every safety "
            f"guardrail{_cost_cap(spec)}, and each version has at least {spec.evaluation.min_conversations} "
            "conversations. Tool calls are validated against the tool schemas the serving version was written for. "
            "Records an MLflow evaluation run (metrics per version, score table, HTML report) and a "
            f"decision record under `llm/decisions/{spec.name}/`.",
            "Read the task log; a malformed log never fails the DAG (it is quarantined and counted). "
            "An MLflow or S3 error fails the task so it retries: it is never read as 'no production prompt'. "
            "Runs triggered by new logs only report; the scheduled run decides.",
        ),
    )
    def prompt_eval():
        @task(multiple_outputs=False)
        def validate_and_redact() -> dict:
            """Quarantine malformed lines, redact personal data, store the rest."""
            from continuum.llm.evaluation import validate_and_redact as run

            return run(spec)

        @task(multiple_outputs=False)
        def expire_raw(intake: dict) -> dict:
            """Delete unredacted landed files older than `evaluation.raw_retention_days`."""
            from continuum.llm.evaluation import expire_raw as run

            return run(spec)

        @task(multiple_outputs=False)
        def read_traces() -> dict:
            """With `conversations: {kind: mlflow_traces}`: the window's traces, validated and redacted."""
            from continuum.llm.traces import read_window

            return read_window(spec, _window_end())

        @task(multiple_outputs=False)
        def score(intake: dict) -> dict:
            """Score every conversation of the window."""
            from continuum.llm.evaluation import score as run

            return run(spec, _window_end())

        @task(multiple_outputs=False)
        def judge_conversations(scored: dict) -> dict:
            """With `llm_default`: the judge rates the window's conversations; kappa with people decides if it counts."""
            from continuum.llm.judging import judge_window

            return judge_window(spec, _llm_config(), _window_end())

        # Runs when the judge skipped (no llm_default): the decision then says the judge did not count.
        @task(multiple_outputs=False, trigger_rule="none_failed")
        def compare(scored: dict) -> dict:
            """Per-version means with CIs and the promotion decision."""
            from continuum.llm.evaluation import compare_and_decide

            return compare_and_decide(spec, scored["window"])

        @task(multiple_outputs=False)
        def write_assessments(scored: dict) -> dict:
            """Scores of trace-sourced conversations as feedback on their MLflow traces (once each)."""
            from continuum.llm.traces import write_assessments as run

            return run(spec, scored["window"])

        @task(multiple_outputs=False)
        def genai_evaluate(scored: dict) -> dict:
            """Up to `evaluation.genai_max_conversations` through mlflow.genai.evaluate, a run per version."""
            from continuum.llm.genai import evaluate_window

            return evaluate_window(spec, scored["window"])

        @task(multiple_outputs=False)
        def record(decided: dict) -> dict:
            """MLflow evaluation run, report, decision record; moves `production` when this run decides."""
            from continuum.llm.evaluation import record as run

            context = get_current_context()
            return run(spec, decided["window"], decided, run=context["run_id"], deciding=_deciding())

        @task(multiple_outputs=False)
        def replay_and_judge(recorded: dict) -> dict:
            """With `llm_default`: replay candidates and add an LLM-as-judge score."""
            from continuum.llm.live import replay_and_judge as run

            return run(spec, _llm_config(), _window_end())

        @task(multiple_outputs=False)
        def optimise_prompt(recorded: dict) -> dict:
            """With `llm_default`, in deciding runs: register versions that gain on held-out conversations."""
            from continuum.llm.live import optimise

            if not _deciding():
                raise AirflowSkipException("runs triggered by new logs do not register candidates")

            return optimise(spec, _llm_config(), _window_end())

        intake = validate_and_redact()
        expire_raw(intake)
        scored = score(intake)
        read_traces() >> scored
        write_assessments(scored)
        genai_evaluate(scored)
        compared = compare(scored)
        judge_conversations(scored) >> compared
        recorded = record(compared)
        replay_and_judge(recorded)
        optimise_prompt(recorded)

    return prompt_eval()


assistants, _errors = load_assistants()  # errors are raised by continuum_spec_errors.py
for _spec in assistants:
    land_dag(_spec)
    eval_dag(_spec)
