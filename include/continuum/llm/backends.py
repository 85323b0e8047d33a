"""An OpenAI-compatible chat backend: the only place Continuum talks to a real LLM.

OpenAI, vLLM, Ollama and llama.cpp's server all answer `POST {base_url}/chat/completions`,
so the official `openai` client covers them through `base_url`. Its timeout and its
retries (429, 408, 409, 5xx and connection errors; exponential backoff from 0.5 s up to
8 s, `Retry-After` honoured) are set explicitly from the connection, never left to
the SDK's defaults (10 minutes, 2 retries), and so is everything it would otherwise
read from the environment: base URL, API key, organisation and project (an
`OPENAI_API_KEY` on a worker must not leak to a self-hosted endpoint), and redirects
(not followed). What the SDK still takes from the environment: `OPENAI_CUSTOM_HEADERS`
(extra headers only) and, through httpx, the standard proxy and CA variables, which a
site behind a proxy needs. This module converts the conversation-log message format
(`tool_calls: [{name, arguments}]`, tool messages with a `name`) to the wire format
(call ids, JSON-string arguments) in one place, so replay and the optimiser never see
wire details. The API key lives in a `SecretStr` and is scrubbed from every error
message: a traceback in the Airflow UI must not leak it.

An error is not an absence: a failed or unusable answer raises `LLMError` (the task
fails and Airflow retries it), it is never read as an empty answer.
`enable_tracing()` turns on `mlflow.openai.autolog()`, so every replay, judge and
optimiser call through this client becomes an MLflow trace.
No Airflow import: the DAG reads the `llm_default` connection and passes its fields here.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

log = logging.getLogger(__name__)

CONNECTION_ID = "llm_default"
_AVAILABLE_TIMEOUT_S = 5.0


class LLMError(RuntimeError):
    """The endpoint failed or answered something unusable; the message is one line, key-free."""


class LLMConfigError(ValueError):
    """The `llm_default` connection is present but cannot be used as it is."""


class LLMConfig(BaseModel):
    base_url: str = Field(description="Up to and including the API version, e.g. https://api.openai.com/v1")
    api_key: SecretStr | None = None
    model: str = Field(min_length=1, description="The model the endpoint serves")
    timeout_s: float = Field(60.0, gt=0, description="Per attempt, connect and read")
    max_retries: int = Field(
        3, ge=0, le=10, description="Retries after the first attempt (the SDK's backoff)"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/]+", value):
            raise ValueError(f"base_url must start with http:// or https:// (got '{value}')")
        return value.rstrip("/")


@dataclass(frozen=True)
class ChatResult:
    """One model answer, with tool calls in the conversation-log format."""

    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    latency_ms: int = 0
    model: str = ""
    finish_reason: str | None = None


class ChatBackend(Protocol):
    """What replay, judge and optimiser need; tests may pass any object with this method."""

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        temperature: float,
        top_p: float,
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
    ) -> ChatResult: ...


def config_from_connection(conn: Mapping[str, Any] | None, conn_id: str = CONNECTION_ID) -> LLMConfig | None:
    """Turn an Airflow connection's fields into a config; None when there is nothing to call.

    `extra.base_url` wins; otherwise the URL is built from host, port and schema (`http`
    or `https`; without one, https on port 443 or no port, http otherwise) and `/v1` is
    appended when the host carries no path. `extra.model` is required: vLLM and Ollama
    reject unknown model names, so guessing one would only move the error.
    """
    if not conn:
        return None
    extra = _extra(conn.get("extra"), conn_id)
    base_url = extra.get("base_url") or _url_from_host(conn)
    if not base_url:
        return None
    if not extra.get("model"):
        raise LLMConfigError(
            f'connection {conn_id} has no model; set its extra to {{"model": "<served model>"}}'
        )
    settings = {
        "base_url": base_url,
        "api_key": conn.get("password") or extra.get("api_key") or None,
        "model": extra["model"],
        **{k: extra[k] for k in ("timeout_s", "max_retries") if k in extra},
    }
    try:
        return LLMConfig.model_validate(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LLMConfigError(f"connection {conn_id}: {where}: {first['msg']}; fix the connection") from None


def _extra(raw: Any, conn_id: str) -> dict[str, Any]:
    if not raw:
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        parsed = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise LLMConfigError(
            f'connection {conn_id}: extra is not JSON; set it to e.g. {{"model": "gpt-4o-mini"}}'
        ) from None
    if not isinstance(parsed, dict):
        raise LLMConfigError(f"connection {conn_id}: extra must be a JSON object")
    return parsed


def _url_from_host(conn: Mapping[str, Any]) -> str | None:
    host = (conn.get("host") or "").strip()
    if not host:
        return None
    port = conn.get("port")
    if "://" not in host:
        schema = (conn.get("schema") or "").lower()
        scheme = schema if schema in ("http", "https") else ("https" if port in (None, "", 443) else "http")
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc if (parts.port or not port) else f"{parts.netloc}:{int(port)}"
    path = parts.path if parts.path.strip("/") else "/v1"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def available(config: LLMConfig | None) -> bool:
    """A cheap `GET /models`, once, within 5 s: True when the endpoint answers, so the DAG can skip cleanly when not."""
    if config is None:
        return False
    backend = OpenAICompatibleBackend(config)
    try:
        backend.list_models(timeout_s=min(config.timeout_s, _AVAILABLE_TIMEOUT_S), max_retries=0)
    except LLMError as exc:
        log.warning("llm_unavailable base_url=%s reason=%s", config.base_url, exc)
        return False
    return True


def enable_tracing(experiment: str | None = None) -> None:
    """Trace every call of the openai client as an MLflow trace (`mlflow.openai.autolog`).

    With `experiment`, the traces go to that MLflow experiment (made the active one);
    otherwise to the active experiment. Call it where a DAG task creates its backend.
    """
    import mlflow

    if experiment is not None:
        from continuum.tracking import ensure_experiment

        ensure_experiment(experiment)
    mlflow.openai.autolog(log_traces=True, silent=True)
    log.info("event=llm_tracing_enabled experiment=%s", experiment or "active")


def backend_for_run(config: LLMConfig, experiment: str | None = None) -> OpenAICompatibleBackend:
    """The backend a DAG task uses: the openai client, with every call traced to MLflow."""
    enable_tracing(experiment)
    return OpenAICompatibleBackend(config)


class OpenAICompatibleBackend:
    """Chat completions through the official `openai` client, timeout and retries from the config."""

    def __init__(self, config: LLMConfig) -> None:
        import httpx
        from openai import DefaultHttpxClient, OpenAI, omit

        self.config = config
        key = config.api_key.get_secret_value() if config.api_key is not None else ""
        # Without a key (a local vLLM or Ollama), no Authorization header at all, rather
        # than whatever OPENAI_API_KEY the worker happens to have.
        self._headers = {} if key else {"Authorization": omit}
        self._client = OpenAI(
            base_url=config.base_url,
            api_key=key or "no-key",
            timeout=httpx.Timeout(config.timeout_s),
            max_retries=config.max_retries,
            default_headers={"OpenAI-Organization": omit, "OpenAI-Project": omit},
            http_client=DefaultHttpxClient(follow_redirects=False, timeout=httpx.Timeout(config.timeout_s)),
        )

    @property
    def client(self):
        """The configured `openai` client, for a library that sends its own calls (litellm, for GEPA).

        Same endpoint, key, timeout and retries, and no organisation or project header from
        the worker's environment; without a key it sends the placeholder bearer token.
        """
        return self._client

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        temperature: float,
        top_p: float,
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
    ) -> ChatResult:
        body: dict[str, Any] = {
            "model": model or self.config.model,
            "messages": to_wire(messages),
            "temperature": float(temperature),
            "top_p": float(top_p),
        }
        if tools:
            body["tools"] = [wire_tool(t) for t in tools]
        started = time.monotonic()
        answer = self._call("POST /chat/completions", self._client.chat.completions.create, body)
        latency_ms = int((time.monotonic() - started) * 1000)
        result = parse_completion(answer, latency_ms)
        log.info(
            "llm_chat model=%s input_tokens=%d output_tokens=%d tool_calls=%d latency_ms=%d",
            result.model or body["model"],
            result.usage["input_tokens"],
            result.usage["output_tokens"],
            len(result.tool_calls),
            latency_ms,
        )
        return result

    def list_models(self, *, timeout_s: float | None = None, max_retries: int | None = None) -> list[str]:
        """The ids of the models the endpoint serves (`GET /models`)."""
        client = self._client.with_options(
            timeout=timeout_s or self.config.timeout_s,
            max_retries=self.config.max_retries if max_retries is None else max_retries,
        )
        answer = self._call("GET /models", client.models.list, {})
        return [str(model.get("id")) for model in answer.get("data") or [] if isinstance(model, dict)]

    def _call(self, what: str, method: Any, body: dict[str, Any]) -> dict[str, Any]:
        """`method(**body)` as a plain dict; every failure of the endpoint as one key-free LLMError line."""
        import openai

        try:
            answer = method(**body, extra_headers=self._headers)
        except openai.APIStatusError as exc:
            problem = f"HTTP {exc.status_code}: {exc.response.text}"
            raise self._error(what, problem, exc.response.request) from None
        except openai.APITimeoutError as exc:
            raise self._error(what, f"no answer within {self.config.timeout_s:g} s", exc.request) from None
        except openai.APIConnectionError as exc:
            reason = exc.__cause__ or exc
            raise self._error(what, f"no answer ({reason})", exc.request) from None
        except openai.APIError as exc:  # a 2xx the SDK cannot read (not JSON, wrong shape)
            raise self._error(what, f"unusable answer ({exc.message})", None) from None
        dumped = answer.model_dump() if hasattr(answer, "model_dump") else None
        if not isinstance(dumped, dict):
            raise self._error(what, f"unusable answer (a {type(answer).__name__}, not a JSON object)", None)
        return dumped

    def _error(self, what: str, problem: str, request: Any) -> LLMError:
        retries = request.headers.get("x-stainless-retry-count") if request is not None else None
        attempts = f" after {int(retries) + 1} attempt(s)" if retries and retries.isdigit() else ""
        return LLMError(
            f"LLM endpoint {self.config.base_url} failed {what}{attempts}: {self._scrub(problem)[:300]}; "
            f"check the {CONNECTION_ID} connection and the endpoint"
        )

    def _scrub(self, text: str) -> str:
        text = " ".join(str(text).split())
        if self.config.api_key is not None:
            key = self.config.api_key.get_secret_value()
            if key:
                text = text.replace(key, "***")
        return text


def wire_tool(tool: Mapping[str, Any] | Any) -> dict[str, Any]:
    """A spec tool (`{name, description, parameters}` or a `Tool` model) as an OpenAI function tool."""
    if hasattr(tool, "model_dump"):
        tool = tool.model_dump()
    if tool.get("type") == "function" and "function" in tool:
        return dict(tool)
    function = {
        "name": tool["name"],
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def to_wire(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Log-format messages to OpenAI wire format: call ids assigned, each tool result tied to its call.

    A tool message answers the earliest pending call with its `name`; a tool message with
    nothing to answer is an inconsistent history, which every OpenAI-compatible server rejects.
    """
    wire: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (call id, tool name), oldest first
    counter = 0
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                counter += 1
                call_id = f"call_{counter}"
                arguments = call.get("arguments", {})
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": call["name"],
                            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                        },
                    }
                )
                pending.append((call_id, call["name"]))
            wire.append({"role": "assistant", "content": message.get("content") or None, "tool_calls": calls})
        elif role == "tool":
            name = message.get("name")
            match = next((p for p in pending if p[1] == name), pending[0] if pending and not name else None)
            if match is None:
                raise ValueError(
                    f"tool message for '{name}' answers no pending tool call; the history is inconsistent"
                )
            pending.remove(match)
            wire.append({"role": "tool", "tool_call_id": match[0], "content": _text(message.get("content"))})
        else:
            wire.append({"role": role, "content": _text(message.get("content"))})
    return wire


def _text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content)


def parse_completion(answer: Mapping[str, Any], latency_ms: int) -> ChatResult:
    """A chat-completions JSON body as a ChatResult; an answer without a message is an LLMError."""
    try:
        choice = answer["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"LLM answer has no choices[0].message (keys: {sorted(answer)[:5]})") from None
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            arguments = raw  # kept as text: the tool-schema scorer reports it as invalid
        calls.append({"name": function.get("name", ""), "arguments": arguments})
    usage = answer.get("usage") or {}
    return ChatResult(
        content=message.get("content") or "",
        tool_calls=calls,
        usage={
            "input_tokens": int(usage.get("prompt_tokens") or 0),
            "output_tokens": int(usage.get("completion_tokens") or 0),
        },
        latency_ms=latency_ms,
        model=str(answer.get("model") or ""),
        finish_reason=choice.get("finish_reason"),
    )
