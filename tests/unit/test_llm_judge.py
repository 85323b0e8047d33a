"""The MLflow judge (`make_judge`) against the local OpenAI-compatible server, and the response cache."""

from __future__ import annotations

import pytest
from llm_server import JUDGE_TAG, MODEL_ID, LLMTestServer

from continuum.llm.backends import LLMConfig, LLMError, OpenAICompatibleBackend
from continuum.llm.cache import CachedBackend, ResponseCache, request_digest
from continuum.llm.judge import Judge, rubric_for
from continuum.llm.specs import AssistantSpec, JudgeSpec, get_assistant

ASKED = {
    "conversation_id": "a",
    "messages": [{"role": "user", "content": "gift?"}, {"role": "assistant", "content": "For whom?"}],
}
TOLD = {
    "conversation_id": "b",
    "messages": [{"role": "user", "content": "gift?"}, {"role": "assistant", "content": "Buy a pen."}],
}


@pytest.fixture
def llm_server():
    with LLMTestServer(api_key="conn-key") as server:
        yield server


@pytest.fixture
def config(llm_server):
    return LLMConfig(base_url=llm_server.base_url, model=MODEL_ID, api_key="conn-key")


def test_the_judge_is_an_mlflow_judge_built_from_the_spec_rubric(llm_server, config, monkeypatch):
    from mlflow.genai.judges.base import Judge as MlflowJudge

    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-workers-own")
    spec = get_assistant("shopping_assistant").model_copy(
        update={"judge": JudgeSpec(rubric="Grade on politeness and on nothing else.")}
    )
    judge = Judge(rubric_for(spec), config)

    assert isinstance(judge._judge, MlflowJudge)
    assert judge.grade(ASKED) == {"rating": 5, "score": 1.0, "reason": "asked a clarifying question"}
    assert judge.grade(TOLD)["rating"] == 2

    sent = llm_server.chat_requests(JUDGE_TAG)
    assert len(sent) == 2 and sent[0]["temperature"] == 0.0 and sent[0]["model"] == MODEL_ID
    assert "Grade on politeness and on nothing else." in sent[0]["messages"][0]["content"]
    assert "ASSISTANT: Buy a pen." in sent[1]["messages"][1]["content"]
    # The connection's key, never the worker's: and the worker's own is left as it was.
    assert {r["auth"] for r in llm_server.requests} == {"Bearer conn-key"}
    import os

    assert os.environ["OPENAI_API_KEY"] == "sk-the-workers-own"


@pytest.mark.parametrize(
    ("answer", "rating", "why"),
    [
        ('{"result": 4, "rationale": "fine"}', 4, "fine"),
        ('```json\n{"result": 3, "rationale": "fenced"}\n```', 3, "fenced"),
        ("I would say it is great!", None, "not the JSON asked for"),
        ('{"result": 9, "rationale": "x"}', None, "off the 1-5 scale"),
        ('{"result": 0, "rationale": "x"}', None, "off the 1-5 scale"),
        ('{"result": "high", "rationale": "x"}', None, "no integer rating"),
        ('{"result": 3.5, "rationale": "x"}', None, "no integer rating"),
    ],
)
def test_an_unusable_grade_is_missing_with_its_reason_never_guessed(llm_server, config, answer, rating, why):
    llm_server.judge_replies.append(answer)
    grade = Judge("r", config).grade(TOLD)
    assert grade["rating"] == rating and why in grade["reason"]
    assert grade["score"] == (None if rating is None else rating / 5)


def test_a_failing_endpoint_raises_instead_of_a_missing_grade(llm_server):
    """An error is not an absence: the task fails and Airflow retries it; the key is not in the message."""
    wrong = Judge("r", LLMConfig(base_url=llm_server.base_url, model=MODEL_ID, api_key="wrong-secret"))
    with pytest.raises(LLMError, match="llm_default") as raised:
        wrong.grade(TOLD)
    assert "wrong-secret" not in str(raised.value)


def test_the_cache_answers_a_repeated_judge_request_and_a_rerun_calls_nobody(s3, llm_server, config):
    first = ResponseCache("shop")
    judge = Judge("r", config, cache=first)
    assert judge.grade(ASKED)["rating"] == judge.grade(ASKED)["rating"] == 5
    assert judge.grade(TOLD)["rating"] == 2
    assert first.stats() == {"hits": 1, "misses": 2, "hit_rate": 0.3333}
    calls = len(llm_server.chat_requests(JUDGE_TAG))
    assert calls == 2

    rerun = ResponseCache("shop")  # a new task process: only S3 remembers
    again = Judge("r", config, cache=rerun)
    assert [again.grade(c)["rating"] for c in (ASKED, TOLD)] == [5, 2]
    assert len(llm_server.chat_requests(JUDGE_TAG)) == calls
    assert rerun.stats()["hit_rate"] == 1.0

    other_rubric = Judge("another rubric", config, cache=ResponseCache("shop"))
    other_rubric.grade(ASKED)
    assert len(llm_server.chat_requests(JUDGE_TAG)) == calls + 1, "a different rubric is a different request"


def test_replays_through_the_cached_backend_are_answered_once_per_request(s3, llm_server, config):
    cache = ResponseCache("shop")
    backend = CachedBackend(OpenAICompatibleBackend(config), cache)
    messages = [{"role": "user", "content": "hello"}]

    first = backend.chat(messages, temperature=0.0, top_p=1.0)
    second = backend.chat(messages, temperature=0.0, top_p=1.0)
    assert first == second and len(llm_server.chat_requests()) == 1
    backend.chat(messages, temperature=0.7, top_p=1.0)
    backend.chat(messages, temperature=0.0, top_p=1.0, model="another-model")
    assert len(llm_server.chat_requests()) == 3, "parameters and model are part of the key"
    assert cache.stats()["hits"] == 1


def test_the_key_is_the_canonical_request():
    assert request_digest({"a": 1, "b": [1, 2]}) == request_digest({"b": [1, 2], "a": 1})
    assert request_digest({"a": 1}) != request_digest({"a": 2})


def test_each_judge_call_is_an_mlflow_trace_and_a_cached_answer_is_not(mlflow_store, llm_server, config, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_experiment("shop-prompt-evaluation")
    judge = Judge("r", config, cache=ResponseCache("shop"))
    judge.grade(ASKED)
    judge.grade(ASKED)
    traces = mlflow.search_traces(locations=[mlflow.get_experiment_by_name("shop-prompt-evaluation").experiment_id], return_type="list")
    assert [t.info.request_preview is not None for t in traces] == [True]
    (span,) = traces[0].data.spans
    assert span.name == "continuum_quality" and span.outputs["rating"] == 5


def test_an_s3_failure_is_not_a_cache_miss(s3, monkeypatch):
    from botocore.exceptions import ClientError

    from continuum import storage

    def down(key):
        raise ClientError({"Error": {"Code": "503", "Message": "Slow Down"}}, "GetObject")

    monkeypatch.setattr(storage, "get_json_tagged", down)
    called = []
    with pytest.raises(ClientError):
        ResponseCache("shop").get_or_call({"kind": "judge"}, lambda: called.append(1) or {})
    assert called == [], "a cache that cannot be read must not call (and pay) the model"


def test_the_readme_judge_example_is_a_valid_spec_section():
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("**The judge.**", 1)[1].split("Only the scheduled run", 1)[0]
    (example,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    raw = get_assistant("shopping_assistant").model_dump(mode="json") | yaml.safe_load(example)
    spec = AssistantSpec.model_validate(raw)
    assert spec.judge.min_agreement == 0.6 and spec.judge.max_conversations == 200
    assert rubric_for(spec).startswith("Grade a retail shopping assistant: it finds products")
