"""An assistant that logs MLflow traces, evaluated by the real prompt-evaluation DAG (`dag.test()`).

Conversations are logged as traces with the real MLflow client (SQLite store); the DAG reads
them, scores them, writes the scores back on the traces, runs a few through
`mlflow.genai.evaluate`, and promotes the better and safe version.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from continuum.llm import prompts, simulate, traces
from continuum.settings import REPO_ROOT

pytestmark = pytest.mark.slow

NAME = "traced_shop"
EXPERIMENT = "traced_shop-traces"


@pytest.fixture
def traced_spec(loop, tmp_path, monkeypatch):
    """The shopping assistant as `traced_shop`, reading its conversations from MLflow traces."""
    from continuum import dagrun
    from continuum.llm.specs import get_assistant

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    spec = yaml.safe_load((REPO_ROOT / "include/domains/shopping_assistant.yaml").read_text())
    spec["name"] = NAME
    spec["conversations"] = {"kind": "mlflow_traces", "experiment": EXPERIMENT}
    spec["evaluation"].update(genai_max_conversations=4, min_conversations=100)
    directory = tmp_path / "specs"
    (directory / "references").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "include/domains/references/shopping_assistant", directory / "references" / NAME)
    (directory / f"{NAME}.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(directory))
    dagrun.reset()
    yield get_assistant(NAME)
    dagrun.reset()


def _log_as_traces(conversations: list[dict], link_prompt: bool = True) -> list[str]:
    """Each simulated conversation as the trace an application would log (prompt loaded inside the call)."""
    import mlflow

    mlflow.set_experiment(EXPERIMENT)
    ids = []
    for conv in conversations:

        @mlflow.trace(name="chat")
        def chat(messages, conv=conv):
            if link_prompt:
                mlflow.genai.load_prompt(f"prompts:/{NAME}/{conv['prompt']['version']}")
            mlflow.update_current_trace(tags={"conversation_id": conv["conversation_id"]})
            with mlflow.start_span("llm", span_type="CHAT_MODEL") as span:
                span.set_inputs({"model": conv["model"], "messages": messages, **conv["params"]})
                usage = conv["usage"]
                span.set_attribute("mlflow.chat.tokenUsage", {**usage, "total_tokens": sum(usage.values())})
            return conv["messages"][-1]

        chat(conv["messages"][:-1])
        trace_id = mlflow.get_last_active_trace_id()
        if conv.get("outcome"):
            mlflow.log_feedback(trace_id=trace_id, name="outcome", value=conv["outcome"]["success"])
        ids.append(trace_id)
    return ids


def test_traced_conversations_are_scored_assessed_and_the_better_version_promoted(traced_spec, tmp_path):
    import mlflow

    from continuum import dagrun
    from continuum.llm import evaluation

    prompts.seed(traced_spec)
    start = datetime.now(UTC) - timedelta(days=1)
    conversations = simulate.generate("shopping_assistant", n=300, seed=7, versions={"1": 0.5, "4": 0.5}, start=start)
    conversations = [c for c in conversations if c["messages"][-1]["role"] == "assistant"]
    ids = _log_as_traces(conversations)
    _log_as_traces(conversations[:3], link_prompt=False)  # no prompt version: quarantined
    # The window ends at the run's start truncated to the second (`window_bounds`): traces logged in
    # that same second belong to the next window, so the run starts in the next second.
    time.sleep(1.1)

    dagrun.run(f"{NAME}_prompt_eval")
    record = evaluation.latest_decision(NAME)

    assert record["conversations"] == len(conversations) and record["quarantined"] == 3
    assert record["duplicates"] == 0  # the 3 unusable copies never reached the window
    assert record["production_before"] == "1" and record["production_after"] == "4", record["reason"]
    assert prompts.production(NAME) == "4"

    mine = [a for a in mlflow.get_trace(ids[0]).info.assessments if a.source.source_id == traces.SOURCE_ID]
    assert {a.name for a in mine} >= {"cost", "system_prompt_leaked"}
    assert all(a.rationale and a.metadata["window"] == record["window"] for a in mine)

    genai_runs = mlflow.search_runs(experiment_names=[f"{NAME}-genai-evaluation"], output_format="list")
    assert sorted(r.data.tags["prompt_version"] for r in genai_runs) == ["1", "4"]

    written = len(mine)
    dagrun.run(f"{NAME}_prompt_eval")  # a rerun adds no feedback and reads no trace twice
    again = [a for a in mlflow.get_trace(ids[0]).info.assessments if a.source.source_id == traces.SOURCE_ID]
    assert len(again) == written
    assert evaluation.latest_decision(NAME)["conversations"] == len(conversations)
