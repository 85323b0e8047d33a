"""An OpenAI-compatible chat backend: the only place Continuum talks to a real LLM.

OpenAI, vLLM, Ollama and llama.cpp's server all answer `POST {base_url}/chat/completions`,
so one small client covers them. It is plain `urllib` (no SDK to pin) and it converts the
conversation-log message format (`tool_calls: [{name, arguments}]`, tool messages with a
`name`) to the wire format (call ids, JSON-string arguments) in one place, so replay and
the optimiser never see wire details. The API key lives in a `SecretStr` and is scrubbed
from every error message: a traceback in the Airflow UI must not leak it.
No Airflow import: the DAG reads the `llm_default` connection and passes its fields here.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

log = logging.getLogger(__name__)

CONNECTION_ID = "llm_default"
_RETRYABLE = {408, 409, 429, 500, 502, 503, 504}
_MAX_RETRY_AFTER_S = 30.0


class LLMError(RuntimeError):
    """The endpoint failed or answered something unusable; the message is one line, key-free."""


class LLMConfigError(ValueError):
    """The `llm_default` connection is present but cannot be used as it is."""


class LLMConfig(BaseModel):
    base_url: str = Field(description="Up to and including the API version, e.g. https://api.openai.com/v1")
    api_key: SecretStr | None = None
    model: str = Field(min_length=1, description="The model the endpoint serves")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles on each retry")

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
        **{k: extra[k] for k in ("timeout_s", "max_retries", "backoff_s") if k in extra},
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
    """A cheap `GET /models`: True when the endpoint answers, so the DAG can skip cleanly when not."""
    if config is None:
        return False
    client = OpenAICompatibleBackend(config)
    try:
        client._request("GET", "/models", None, timeout=min(config.timeout_s, 5.0), retries=0)
    except LLMError as exc:
        log.warning("llm_unavailable base_url=%s reason=%s", config.base_url, exc)
        return False
    return True


class OpenAICompatibleBackend:
    """Chat completions with retries on 429/5xx and network errors, exponential backoff."""

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep

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
        answer = self._request("POST", "/chat/completions", body)
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

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> dict[str, Any]:
        retries = self.config.max_retries if retries is None else retries
        url = self.config.base_url + path
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        for attempt in range(retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=timeout or self.config.timeout_s) as response:
                    return json.loads(response.read().decode() or "{}")
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace") if exc.fp else ""
                problem, retryable = f"HTTP {exc.code}: {detail}", exc.code in _RETRYABLE
                delay = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                problem, retryable, delay = f"no answer ({getattr(exc, 'reason', exc)})", True, None
            except json.JSONDecodeError:
                problem, retryable, delay = "answer is not JSON", False, None
            if not retryable or attempt == retries:
                break
            delay = self.config.backoff_s * 2**attempt if delay is None else delay
            log.warning(
                "llm_retry path=%s attempt=%d problem=%s", path, attempt + 1, self._scrub(problem)[:120]
            )
            self._sleep(delay)
        raise LLMError(
            f"LLM endpoint {self.config.base_url} failed {method} {path} after {attempt + 1} attempt(s): "
            f"{self._scrub(problem)[:300]}; check the {CONNECTION_ID} connection and the endpoint"
        )

    def _scrub(self, text: str) -> str:
        text = " ".join(str(text).split())
        if self.config.api_key is not None:
            key = self.config.api_key.get_secret_value()
            if key:
                text = text.replace(key, "***")
        return text


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER_S) if value else None
    except ValueError:
        return None


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
