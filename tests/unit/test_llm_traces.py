"""MLflow traces as conversations: conversion, quarantine, window idempotency and feedback write-back,
with traces logged by the real MLflow client to a SQLite store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from continuum import storage
from continuum.llm import evaluation, traces
from continuum.llm.specs import AssistantSpec

EMAIL = "jane.doe@example.com"
EXPERIMENT = "shop-traces"


def make_spec(**conversations) -> AssistantSpec:
    return AssistantSpec.model_validate(
        {
            "name": "shop",
            "description": "d",
            "owner": "o",
            "business": "retail",
            "primary_score": "outcome",
            "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
            "evaluation": {"min_conversations": 1, "bootstrap_samples": 200},
            "prompts": [
                {"template": "You are the shop assistant."},
                {"template": "You are the kind shop assistant."},
            ],
            "conversations": {"kind": "mlflow_traces", "experiment": EXPERIMENT, **conversations},
        }
    )


@pytest.fixture
def tracing(mlflow_store, monkeypatch):
    """The spec's experiment and prompt versions in the test's own MLflow store; returns a trace logger."""
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    import mlflow

    from continuum.llm import prompts

    spec = make_spec()
    prompts.seed(spec)
    experiment = mlflow.set_experiment(EXPERIMENT)

    def log(
        question: str = "Do you sell red shoes?",
        answer: object = {"role": "assistant", "content": "Yes, from 40 EUR."},
        version: int | None = 1,
        params: dict | None = None,
        usage: dict | None = None,
        tags: dict | None = None,
        success: bool | None = True,
    ) -> str:
        @mlflow.trace(name="chat")
        def chat(messages):
            if version is not None:
                mlflow.genai.load_prompt(f"prompts:/shop/{version}")
            if tags:
                mlflow.update_current_trace(tags=tags)
            with mlflow.start_span("llm", span_type="CHAT_MODEL") as span:
                span.set_inputs({"model": "gpt-4o-mini", "messages": messages, **(params or {})})
                span.set_outputs(answer)
                if usage is not False:
                    span.set_attribute(
                        "mlflow.chat.tokenUsage",
                        usage or {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70},
                    )
            return answer

        chat(
            [
                {"role": "system", "content": "You are the shop assistant."},
                {"role": "user", "content": question},
            ]
        )
        trace_id = mlflow.get_last_active_trace_id()
        if success is not None:
            mlflow.log_feedback(trace_id=trace_id, name="outcome", value=success)
        return trace_id

    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    return log


def _params(t: float = 0.3, p: float = 1.0) -> dict:
    return {"temperature": t, "top_p": p}


def _end() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=1)


def test_a_trace_becomes_the_conversation_it_logged(tracing):
    import mlflow

    trace_id = tracing(
        question=f"Mail me at {EMAIL}", version=2, params=_params(0.7, 0.9), tags={"conversation_id": "c-9"}
    )
    (trace,) = mlflow.search_traces(return_type="list")
    valid, bad = traces.convert([trace], "shop")
    assert bad == []
    (conv,) = valid
    assert conv["conversation_id"] == "c-9" and conv["trace_id"] == trace_id
    assert conv["prompt"] == {"name": "shop", "version": "2"}
    assert conv["params"] == {"temperature": 0.7, "top_p": 0.9} and conv["model"] == "gpt-4o-mini"
    assert conv["usage"] == {"input_tokens": 50, "output_tokens": 20}
    assert [m["role"] for m in conv["messages"]] == ["system", "user", "assistant"]
    assert conv["messages"][-1]["content"] == "Yes, from 40 EUR."
    assert conv["outcome"] == {"success": True}
    assert conv["started_at"].startswith(datetime.now(UTC).strftime("%Y-%m-%d"))


def test_a_chat_completion_output_is_read_as_the_answer(tracing):
    import mlflow

    completion = {"choices": [{"message": {"role": "assistant", "content": "We have three."}}]}
    tracing(answer=completion, params=_params())
    valid, bad = traces.convert(mlflow.search_traces(return_type="list"), "shop")
    assert bad == [] and valid[0]["messages"][-1] == {"role": "assistant", "content": "We have three."}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"version": None, "params": _params()}, "no version of prompt 'shop' linked"),
        ({"params": {"temperature": 0.3}}, "no top_p"),
        ({"params": _params(), "usage": False}, "no token usage"),
        ({"params": _params(), "answer": 42}, "not an assistant message"),
        ({"params": _params(t=5.0)}, "params.temperature"),
    ],
)
def test_a_trace_that_is_not_a_conversation_is_quarantined_with_its_reason(tracing, kwargs, reason):
    import mlflow

    trace_id = tracing(**kwargs)
    valid, bad = traces.convert(mlflow.search_traces(return_type="list"), "shop")
    assert valid == []
    assert bad[0]["trace_id"] == trace_id and reason in bad[0]["reason"], bad[0]["reason"]


def test_the_window_is_read_redacted_stored_counted_and_read_once(tracing):
    spec = make_spec()
    for i in range(3):
        tracing(question=f"I am {EMAIL}, shoes size {40 + i}?", params=_params())
    tracing(version=None, params=_params())  # quarantined
    first = traces.read_window(spec, _end())
    assert (first["valid"], first["quarantined"], first["skipped"]) == (3, 1, False)
    window = first["window"]
    keys = storage.LlmKeys("shop")
    stored = storage.get_bytes(keys.redacted(traces.batch_id(window))).decode()
    assert EMAIL not in stored and "[EMAIL]" in stored
    report = storage.get_json(keys.quarantine_report(traces.batch_id(window)))
    assert report["quarantined"] == 1 and "linked" in report["reasons"][0]["reason"]

    again = traces.read_window(spec, _end_of(window))
    assert again["skipped"] is True and (again["valid"], again["quarantined"]) == (3, 1)
    conversations, quarantined, duplicates = evaluation.load_window(spec, _end_of(window))
    assert len(conversations) == 3 and quarantined == 1 and duplicates == 0


def _end_of(window: str) -> datetime:
    return datetime.strptime(window.split("-")[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def test_a_later_overlapping_window_stores_only_new_traces(tracing):
    spec = make_spec()
    tracing(params=_params())
    first = traces.read_window(spec, _end())
    tracing(params=_params())
    later = traces.read_window(spec, _end_of(first["window"]) + timedelta(seconds=5))
    assert later["window"] != first["window"] and later["valid"] == 1
    conversations, _, duplicates = evaluation.load_window(spec, _end_of(later["window"]))
    assert len(conversations) == 2 and duplicates == 0


def test_the_spec_filter_narrows_the_search(tracing):
    spec = make_spec(filter="tags.env = 'prod'")
    tracing(params=_params(), tags={"env": "prod"})
    tracing(params=_params(), tags={"env": "dev"})
    assert traces.read_window(spec, _end())["valid"] == 1


def test_an_unknown_experiment_is_a_spec_error_not_no_traces(tracing):
    spec = make_spec()
    spec.conversations.experiment = "no-such-experiment"
    with pytest.raises(ValueError, match="no-such-experiment"):
        traces.read_window(spec, _end())


def test_scores_are_written_back_as_feedback_once(tracing):
    import mlflow

    spec = make_spec()
    trace_id = tracing(question=f"Mail me at {EMAIL} please", params=_params())
    end = _end()
    window = traces.read_window(spec, end)["window"]
    evaluation.score(spec, _end_of(window))
    first = traces.write_assessments(spec, window)
    again = traces.write_assessments(spec, window)
    assert first["traces"] == 1 and first["written"] > 0
    assert again["written"] == 0 and again["already"] == first["written"]
    mine = [a for a in mlflow.get_trace(trace_id).info.assessments if a.source.source_id == traces.SOURCE_ID]
    assert len(mine) == first["written"]
    table = storage.get_frame(storage.LlmKeys("shop").scores(window)).iloc[0]
    by_name = {a.name: a for a in mine}
    assert by_name["cost"].feedback.value == pytest.approx(table["cost"])
    assert by_name["pii_echoed"].feedback.value == table["pii_echoed"]
    assert "personal data" in by_name["pii_echoed"].rationale and by_name["cost"].metadata["window"] == window
    assert "outcome" not in by_name  # people's feedback is already on the trace
    json.dumps([a.to_dictionary() for a in mine])


def test_the_readme_trace_setup_loads_and_its_logged_trace_is_read(mlflow_store, monkeypatch):
    import re
    from pathlib import Path

    import yaml

    from continuum.llm import prompts
    from continuum.llm.specs import get_assistant

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("**Conversations from MLflow traces.**", 1)[1].split("**Raw logs.**", 1)[0]
    (setup,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    (logging_example,) = re.findall(r"```python\n(.*?)```", section, re.S)
    shop = get_assistant("shopping_assistant")
    example = yaml.safe_load(setup)
    raw = shop.model_dump(mode="json") | {"conversations": example["conversations"]}
    raw["evaluation"] |= example["evaluation"]
    spec = AssistantSpec.model_validate(raw)
    assert spec.conversations.filter == "tags.env = 'prod'" and spec.evaluation.genai_max_conversations == 20
    prompts.seed(spec)
    exec(compile(logging_example, "README.md", "exec"), {})
    result = traces.read_window(spec, _end())
    assert (result["valid"], result["quarantined"]) == (1, 0)
    (conv,), _, _ = evaluation.load_window(spec, _end_of(result["window"]))
    assert conv["conversation_id"] == "c-42" and conv["prompt"]["version"] == "2"
    assert conv["params"] == {"temperature": 0.3, "top_p": 0.9} and conv["outcome"] == {"success": True}


def test_an_unknown_conversation_source_kind_is_refused_with_its_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="conversations.kind"):
        make_spec(kind="kafka")


def test_the_genai_evaluation_runs_once_per_version_and_window(tracing):
    import mlflow

    from continuum.llm import genai

    spec = make_spec()
    spec.evaluation.genai_max_conversations = 2
    tracing(params=_params(), version=1)
    tracing(params=_params(), version=2)
    window = traces.read_window(spec, _end())["window"]
    evaluation.score(spec, _end_of(window))
    assert genai.evaluate_window(spec, window)["evaluated"] == {"1": 1, "2": 1}
    assert genai.evaluate_window(spec, window)["evaluated"] == {}
    runs = mlflow.search_runs(experiment_names=["shop-genai-evaluation"], output_format="list")
    assert sorted(r.data.tags["prompt_version"] for r in runs) == ["1", "2"]
