"""A tiny OpenAI-compatible server for tests: deterministic, scriptable, on 127.0.0.1.

It serves `POST /v1/chat/completions` and `GET /v1/models` and behaves like a
well-mannered but simple model, so the real-LLM path (backend, replay, judge,
optimiser, and the DAG tasks that use them) is tested without any remote service:

- judge requests (an MLflow `make_judge` call whose instructions carry `[continuum:judge]`)
  get a JSON grade `{"result": 1-5, "rationale": ...}`: 5 when an assistant line in the
  transcript asks a question, 2 otherwise; or the next of `judge_replies` when a test
  scripted some;
- optimiser requests (`[continuum:optimizer]`) get a reflection and the prompt found in
  `<current_prompt>` plus the first phrase of `IMPROVEMENTS` it does not contain yet,
  inside `<prompt>` tags;
- GEPA's reflection requests (one user message asking for the new instruction "within ```
  blocks", sent through litellm) get the instruction from the first ``` block plus the first
  phrase of `gepa_additions` (default `IMPROVEMENTS`) it does not contain yet, in ``` fences;
- chat: after a tool result it summarises it; on the first turn with a system prompt that
  mentions a "clarifying question" it asks one, and so it does when the system prompt has
  `GIFT_RULE` and the user mentions a gift; when `search_products` is offered and the
  user asks for something to buy it calls that tool; otherwise it answers plainly.

Like real servers it rejects (400) a tool message whose `tool_call_id` answers no call.
It answers what the official `openai` client sends (JSON bodies, bearer auth, its
`x-stainless-*` headers). Every request is recorded (`requests`, with its headers);
`fail_next(status, times)` makes the next answers fail; `answer_next(status, raw)` sends
raw bytes once (a proxy's HTML page, an empty choice list); `delay_next(seconds)` holds
the next answer back (a timeout); `api_key` makes it demand that bearer token and echo a
wrong one in its 401 body, as some servers do.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "continuum-test-model"
JUDGE_TAG = "[continuum:judge]"
OPTIMIZER_TAG = "[continuum:optimizer]"
CLARIFYING_REPLY = "Happy to help! Who is it for, and what budget do you have in mind?"
IMPROVEMENTS = (
    "Always ask a clarifying question when the request is vague.",
    "Confirm the choice before you recommend a purchase.",
    "Keep every answer under five sentences.",
)
GIFT_RULE = "When the customer mentions a gift, ask who it is for."
GEPA_MARK = "Provide the new instructions within ``` blocks"
_PRODUCT_WORDS = re.compile(r"\b(buy|find|gift|looking for|need|want|shoes|present)\b", re.I)


class LLMTestServer:
    """Start with `with LLMTestServer() as server:`; `server.base_url` ends in /v1."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.judge_replies: deque[str] = deque()
        self.gepa_additions: tuple[str, ...] = IMPROVEMENTS
        self._failures: deque[tuple[int, str]] = deque()
        self._raw: deque[tuple[int, bytes, str]] = deque()
        self._delays: deque[float] = deque()
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> LLMTestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, status: int = 500, times: int = 1, body: str = "upstream overloaded") -> None:
        self._failures.extend([(status, body)] * times)

    def answer_next(self, status: int, raw: bytes | str, content_type: str = "application/json") -> None:
        self._raw.append((status, raw.encode() if isinstance(raw, str) else raw, content_type))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        self._delays.extend([seconds] * times)

    def chat_requests(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Recorded chat bodies; with `tag`, only those whose system prompt carries it."""
        bodies = [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]
        return [b for b in bodies if tag is None or tag in _system(b["messages"])]

    def gepa_requests(self) -> list[dict[str, Any]]:
        """Recorded chat bodies that are GEPA's reflection requests (they carry no system prompt)."""
        return [b for b in self.chat_requests() if GEPA_MARK in str((b.get("messages") or [{}])[-1].get("content"))]

    # -- behaviour -------------------------------------------------------------------

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        messages = body.get("messages") or []
        problem = _inconsistent_tools(messages)
        if problem:
            return 400, {"error": {"message": problem, "type": "invalid_request_error"}}
        system = _system(messages)
        if JUDGE_TAG in system:
            message = {"role": "assistant", "content": self._grade(messages)}
        elif OPTIMIZER_TAG in system:
            message = {"role": "assistant", "content": _improve(messages[-1].get("content") or "")}
        elif not system and GEPA_MARK in str(messages[-1].get("content") or ""):
            message = {"role": "assistant", "content": _instruct(messages[-1]["content"], self.gepa_additions)}
        else:
            message = _assistant_turn(system, messages, body.get("tools") or [])
        words = sum(len(str(m.get("content") or "").split()) for m in messages)
        out_words = len(str(message.get("content") or "").split()) + 5 * len(message.get("tool_calls", []))
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or MODEL_ID,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": words,
                "completion_tokens": out_words,
                "total_tokens": words + out_words,
            },
        }

    def _grade(self, messages: list[dict[str, Any]]) -> str:
        """An MLflow judge's answer: JSON `{"result": 1-5, "rationale": ...}` (5 when the assistant asked)."""
        if self.judge_replies:
            return self.judge_replies.popleft()
        transcript = _judged_transcript(messages[-1].get("content") or "")
        asked = any(
            line.startswith("ASSISTANT") and line.rstrip().endswith("?") for line in transcript.splitlines()
        )
        grade = (
            {"result": 5, "rationale": "asked a clarifying question"}
            if asked
            else {"result": 2, "rationale": "no question"}
        )
        return json.dumps(grade)


def _judged_transcript(content: str) -> str:
    """The transcript inside an MLflow judge's user message (`inputs: {"transcript": ...}`)."""
    start = content.find("inputs:")
    if start < 0:
        return content
    try:
        inputs, _ = json.JSONDecoder().raw_decode(content, content.index("{", start))
    except (ValueError, json.JSONDecodeError):
        return content
    return str(inputs.get("transcript", content)) if isinstance(inputs, dict) else content


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) closes the socket: not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _system(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")


def _inconsistent_tools(messages: list[dict[str, Any]]) -> str | None:
    open_ids: set[str] = set()
    for message in messages:
        for call in message.get("tool_calls") or []:
            open_ids.add(call.get("id"))
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in open_ids:
                return f"tool message with tool_call_id {message.get('tool_call_id')!r} answers no tool call"
            open_ids.discard(message["tool_call_id"])
    return None


def _improve(request: str) -> str:
    found = re.search(r"<current_prompt>\n?(.*?)\n?</current_prompt>", request, re.S)
    current = found.group(1).strip() if found else ""
    addition = next((p for p in IMPROVEMENTS if p not in current), "")
    improved = f"{current}\n{addition}".strip()
    return f"The failing conversations show vague requests answered without a question.\n<prompt>\n{improved}\n</prompt>"


def _instruct(request: str, additions: tuple[str, ...]) -> str:
    """GEPA's reflection: the current instruction (its first ``` block) plus one addition, fenced."""
    found = re.search(r"```\n?(.*?)\n?```", request, re.S)
    current = found.group(1).strip() if found else ""
    addition = next((p for p in additions if p not in current), "")
    return f"The responses never ask what the customer means.\n```\n{f'{current} {addition}'.strip()}\n```"


def _assistant_turn(
    system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> dict[str, Any]:
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return {"role": "assistant", "content": f"Here is what I found: {str(last.get('content'))[:200]}"}
    user = str(last.get("content") or "")
    first_turn = not any(m.get("role") == "assistant" for m in messages)
    gift = GIFT_RULE in system and "gift" in user.lower()
    if first_turn and ("clarifying question" in system.lower() or gift):
        return {"role": "assistant", "content": CLARIFYING_REPLY}
    offered = {t.get("function", {}).get("name") for t in tools}
    if "search_products" in offered and _PRODUCT_WORDS.search(user):
        call = {
            "id": f"call_srv_{len(messages)}",
            "type": "function",
            "function": {"name": "search_products", "arguments": json.dumps({"query": user[:80]})},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    return {"role": "assistant", "content": "Thanks, I can help with that."}


def _handler(server: LLMTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _gate(self, body: dict[str, Any] | None) -> bool:
            """Record the request; answer a scripted failure or an auth error. True when handled."""
            auth = self.headers.get("Authorization", "")
            with server._lock:
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "auth": auth,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                failure = server._failures.popleft() if server._failures else None
                raw = server._raw.popleft() if server._raw and not failure else None
                delay = server._delays.popleft() if server._delays else 0.0
            if delay:
                time.sleep(delay)  # the client gives up first: a timeout, as a test wants
            if raw:
                self.send_response(raw[0])
                self.send_header("Content-Type", raw[2])
                self.send_header("Content-Length", str(len(raw[1])))
                self.end_headers()
                self.wfile.write(raw[1])
                return True
            if failure:
                self._send(failure[0], {"error": {"message": failure[1]}})
                return True
            if server.api_key and auth != f"Bearer {server.api_key}":
                given = auth.removeprefix("Bearer ")
                self._send(401, {"error": {"message": f"Incorrect API key provided: {given}"}})
                return True
            return False

        def do_GET(self) -> None:
            if self._gate(None):
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "body is not JSON"}})
                return
            if self._gate(body):
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            self._send(*server.respond(body))

    return Handler
