"""The OpenAI-compatible backend (the official openai client) against a local test server:
chat, tools, retries, errors, explicit settings, MLflow traces, config."""

from __future__ import annotations

import json
import socket

import pytest
from llm_server import MODEL_ID, LLMTestServer

from continuum.llm.backends import (
    LLMConfig,
    LLMConfigError,
    LLMError,
    OpenAICompatibleBackend,
    available,
    backend_for_run,
    config_from_connection,
    to_wire,
)

SEARCH = {
    "name": "search_products",
    "description": "Search the catalogue",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


@pytest.fixture
def llm_server():
    with LLMTestServer() as server:
        yield server


def backend_for(server: LLMTestServer, **overrides) -> tuple[OpenAICompatibleBackend, LLMConfig]:
    config = LLMConfig(base_url=server.base_url, model=MODEL_ID, **overrides)
    return OpenAICompatibleBackend(config), config


def test_chat_sends_parameters_and_maps_usage(llm_server):
    backend, _ = backend_for(llm_server, api_key="sk-test")
    result = backend.chat([{"role": "user", "content": "hello there"}], temperature=0.2, top_p=0.9)

    assert result.content == "Thanks, I can help with that."
    assert result.tool_calls == []
    assert result.usage == {"input_tokens": 2, "output_tokens": 6}
    assert result.model == MODEL_ID
    assert result.finish_reason == "stop"
    [request] = llm_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["headers"]["user-agent"].startswith("OpenAI/Python")  # the official client spoke
    assert request["body"]["temperature"] == 0.2 and request["body"]["top_p"] == 0.9
    assert "tools" not in request["body"]


def test_tool_calls_come_back_in_log_format_and_results_go_back_tied_to_them(llm_server):
    backend, _ = backend_for(llm_server)
    history = [{"role": "user", "content": "I want to buy running shoes"}]

    first = backend.chat(history, temperature=0, top_p=1, tools=[SEARCH])

    assert first.tool_calls == [
        {"name": "search_products", "arguments": {"query": "I want to buy running shoes"}}
    ]
    assert first.finish_reason == "tool_calls"
    sent_tools = llm_server.requests[0]["body"]["tools"]
    assert sent_tools == [{"type": "function", "function": SEARCH}]

    # The server answers 400 unless the tool message carries the id of the call it answers.
    history += [
        {"role": "assistant", "content": "", "tool_calls": first.tool_calls},
        {"role": "tool", "name": "search_products", "content": "Trail X, 89 EUR"},
    ]
    second = backend.chat(history, temperature=0, top_p=1, tools=[SEARCH])
    assert second.content == "Here is what I found: Trail X, 89 EUR"


def test_to_wire_ties_tool_results_to_calls_by_name_in_order():
    wire = to_wire(
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"name": "check_policy", "arguments": {"policy": "P"}},
                    {"name": "check_fraud", "arguments": '{"claim": "C"}'},
                ],
            },
            {"role": "tool", "name": "check_fraud", "content": {"suspected": False}},
            {"role": "tool", "name": "check_policy", "content": "covered"},
        ]
    )
    calls = wire[1]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"policy": "P"}', '{"claim": "C"}']
    assert wire[2] == {"role": "tool", "tool_call_id": calls[1]["id"], "content": '{"suspected": false}'}
    assert wire[3]["tool_call_id"] == calls[0]["id"]


def test_to_wire_rejects_a_tool_result_that_answers_no_call():
    with pytest.raises(ValueError, match="answers no pending tool call"):
        to_wire(
            [{"role": "user", "content": "x"}, {"role": "tool", "name": "search_products", "content": "y"}]
        )


def test_a_500_is_retried_by_the_client(llm_server):
    backend, _ = backend_for(llm_server)
    llm_server.fail_next(500)

    result = backend.chat([{"role": "user", "content": "hello"}], temperature=0, top_p=1)

    assert result.content == "Thanks, I can help with that."
    assert len(llm_server.requests) == 2
    assert [r["headers"]["x-stainless-retry-count"] for r in llm_server.requests] == ["0", "1"]


def test_persistent_503_gives_up_after_max_retries_with_one_line_error(llm_server):
    backend, _ = backend_for(llm_server, max_retries=2)
    llm_server.fail_next(503, times=5, body="overloaded\nplease retry")

    with pytest.raises(LLMError) as raised:
        backend.chat([{"role": "user", "content": "hello"}], temperature=0, top_p=1)

    message = str(raised.value)
    assert "HTTP 503" in message and "3 attempt(s)" in message and "llm_default" in message
    assert "\n" not in message
    assert len(llm_server.requests) == 3


def test_a_400_is_not_retried(llm_server):
    backend, _ = backend_for(llm_server)
    llm_server.fail_next(400, body="bad request")

    with pytest.raises(LLMError, match="HTTP 400"):
        backend.chat([{"role": "user", "content": "hello"}], temperature=0, top_p=1)
    assert len(llm_server.requests) == 1


def test_a_slow_endpoint_times_out_within_the_configured_bound_and_raises(llm_server):
    backend, _ = backend_for(llm_server, timeout_s=0.2, max_retries=1)
    llm_server.delay_next(1.0, times=2)

    with pytest.raises(LLMError, match="no answer within 0.2 s"):
        backend.chat([{"role": "user", "content": "hello"}], temperature=0, top_p=1)
    assert len(llm_server.requests) == 2  # the first attempt and one retry, then the error


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ('{"id": "x", "object": "chat.completion", "choices": []}', "application/json"),
        ("{}", "application/json"),
        ("<html>gateway says hello</html>", "text/html"),
    ],
)
def test_an_unusable_200_answer_raises_and_is_never_an_empty_answer(llm_server, raw, content_type):
    backend, _ = backend_for(llm_server)
    llm_server.answer_next(200, raw, content_type)

    with pytest.raises(LLMError):
        backend.chat([{"role": "user", "content": "hello"}], temperature=0, top_p=1)


def test_errors_never_contain_the_api_key():
    secret = "sk-very-secret-key-123"
    with LLMTestServer(api_key="sk-the-right-one") as server:
        backend, _ = backend_for(server, api_key=secret)
        with pytest.raises(LLMError) as raised:
            backend.chat([{"role": "user", "content": "hello"}], temperature=0, top_p=1)
        # The server echoed the wrong key in its 401 body; the error must not repeat it.
        assert secret in server.requests[0]["auth"]
    assert "HTTP 401" in str(raised.value)
    assert secret not in str(raised.value)
    assert secret not in repr(backend.config) and secret not in str(backend.config.model_dump())


def test_settings_come_from_the_config_never_from_openai_environment_variables(llm_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-worker-env")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    backend, _ = backend_for(llm_server, timeout_s=7, max_retries=4)

    backend.chat([{"role": "user", "content": "hello"}], temperature=0, top_p=1)

    [request] = llm_server.requests  # it went to the configured base_url, not OPENAI_BASE_URL
    assert request["auth"] == ""  # no key configured: no Authorization header at all
    assert "openai-organization" not in request["headers"] and "openai-project" not in request["headers"]
    assert request["headers"]["x-stainless-read-timeout"] == "7.0"
    assert backend._client.max_retries == 4


def test_unreachable_endpoint_is_a_clear_error_and_not_available():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    config = LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0)

    with pytest.raises(LLMError, match="no answer"):
        OpenAICompatibleBackend(config).chat([{"role": "user", "content": "x"}], temperature=0, top_p=1)
    assert available(config) is False
    assert available(None) is False


def test_available_asks_the_models_route_once(llm_server):
    backend, config = backend_for(llm_server)
    assert available(config) is True
    assert llm_server.requests[-1]["method"] == "GET"
    assert llm_server.requests[-1]["path"] == "/v1/models"
    llm_server.fail_next(503, times=3)
    assert available(config) is False
    assert len(llm_server.requests) == 2  # no retries: the DAG only wants to know whether to skip
    assert backend.list_models() == [MODEL_ID]


def test_a_call_through_the_run_backend_is_an_mlflow_trace(llm_server, mlflow_store):
    import mlflow

    backend = backend_for_run(
        LLMConfig(base_url=llm_server.base_url, model=MODEL_ID), experiment="shop-prompt-evaluation"
    )
    try:
        result = backend.chat([{"role": "user", "content": "hello there"}], temperature=0.2, top_p=0.9)
    finally:
        mlflow.openai.autolog(disable=True)

    mlflow.flush_trace_async_logging()
    experiment = mlflow.get_experiment_by_name("shop-prompt-evaluation")
    traces = mlflow.search_traces(locations=[experiment.experiment_id], return_type="list")
    assert len(traces) == 1
    trace = traces[0]
    assert trace.info.status == "OK"
    [span] = [s for s in trace.data.spans if s.parent_id is None]
    assert span.inputs["messages"] == [{"role": "user", "content": "hello there"}]
    assert span.inputs["temperature"] == 0.2
    assert result.content in json.dumps(span.outputs)


@pytest.mark.parametrize(
    ("conn", "base_url"),
    [
        (
            {"host": "api.openai.com", "password": "sk-1", "extra": '{"model": "gpt-4o-mini"}'},
            "https://api.openai.com/v1",
        ),
        ({"host": "localhost", "port": 11434, "extra": {"model": "llama3.2"}}, "http://localhost:11434/v1"),
        (
            {"host": "vllm.internal", "schema": "https", "port": 8443, "extra": {"model": "m"}},
            "https://vllm.internal:8443/v1",
        ),
        ({"host": "http://vllm:8000/openai/v1/", "extra": {"model": "m"}}, "http://vllm:8000/openai/v1"),
        ({"host": "http://llama", "port": 8080, "extra": {"model": "m"}}, "http://llama:8080/v1"),
        (
            {"host": "ignored", "extra": {"model": "m", "base_url": "http://10.0.0.5:8000/v1"}},
            "http://10.0.0.5:8000/v1",
        ),
        ({"extra": {"model": "m", "base_url": "http://10.0.0.5:8000/v1"}}, "http://10.0.0.5:8000/v1"),
    ],
)
def test_config_from_connection_builds_the_base_url(conn, base_url):
    assert config_from_connection(conn).base_url == base_url


def test_config_from_connection_reads_key_model_and_options():
    config = config_from_connection(
        {"host": "h", "password": "sk-2", "extra": {"model": "m", "timeout_s": 12, "max_retries": 1}}
    )
    assert config.model == "m" and config.timeout_s == 12 and config.max_retries == 1
    assert config.api_key.get_secret_value() == "sk-2"
    assert (
        config_from_connection(
            {"host": "h", "extra": {"model": "m", "api_key": "sk-3"}}
        ).api_key.get_secret_value()
        == "sk-3"
    )
    assert config_from_connection({"host": "h", "extra": {"model": "m"}}).api_key is None


@pytest.mark.parametrize("conn", [None, {}, {"host": "", "extra": ""}, {"conn_type": "http"}])
def test_no_connection_or_no_host_means_no_config(conn):
    assert config_from_connection(conn) is None


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"host": "h"}, "has no model"),
        ({"host": "h", "extra": "{not json"}, "extra is not JSON"),
        ({"host": "h", "extra": "[1]"}, "JSON object"),
        ({"extra": {"model": "m", "base_url": "ftp://x"}}, "base_url"),
        ({"host": "h", "password": "sk-secret", "extra": {"model": "m", "timeout_s": -1}}, "timeout_s"),
    ],
)
def test_unusable_connection_says_what_to_fix(conn, message):
    with pytest.raises(LLMConfigError, match=message) as raised:
        config_from_connection(conn)
    assert "llm_default" in str(raised.value)
    assert "sk-secret" not in str(raised.value)
