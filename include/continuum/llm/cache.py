"""A response cache for LLM calls: the same request is answered once, a re-run costs nothing.

Replays, judge calls and the optimiser's probes ask the same model the same question
again whenever a window is re-evaluated (a cleared task, a retried run, the per-file
runs and the scheduled one over overlapping data). Each answer is stored in S3 under
the SHA-256 of its request: the kind of call, the model, every parameter and every
message, as canonical JSON. The answer of a deterministic request (temperature 0, the
judge) is what the model would say again; for a sampled one it is one draw, kept so a
re-run of the same window reproduces its decision instead of drawing anew.

Only redacted conversations reach an LLM, so only redacted text is cached. A read
failure of S3 raises (an error is not a miss: reading it as one would call and pay again
while S3 is down, and then fail to store); only a missing object is a miss.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from continuum import storage
from continuum.llm.backends import ChatBackend, ChatResult


def request_digest(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request as canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """Answers by request hash for one assistant, counting hits and misses."""

    def __init__(self, assistant: str) -> None:
        self.keys = storage.LlmKeys(assistant)
        self.hits = 0
        self.misses = 0

    def get_or_call(self, request: Mapping[str, Any], call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The stored answer to `request`, or `call()`'s, stored for next time."""
        key = self.keys.cache(request_digest(request))
        stored = storage.get_json_tagged(key)
        if stored is not None:
            self.hits += 1
            return stored[0]["response"]
        self.misses += 1
        response = call()
        storage.put_json(key, {"request": request, "response": response})
        return response

    def stats(self) -> dict[str, Any]:
        calls = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": round(self.hits / calls, 4) if calls else None}


class CachedBackend:
    """A ChatBackend that answers repeated requests from the cache; others go to `backend`."""

    def __init__(self, backend: ChatBackend, cache: ResponseCache) -> None:
        self.backend = backend
        self.cache = cache
        self.config = getattr(backend, "config", None)

    @property
    def client(self):
        """The wrapped backend's `openai` client (GEPA's litellm calls use it; they are not cached)."""
        return self.backend.client

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        temperature: float,
        top_p: float,
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
    ) -> ChatResult:
        request = {
            "kind": "chat",
            "model": model or getattr(self.config, "model", None),
            "base_url": getattr(self.config, "base_url", None),
            "temperature": float(temperature),
            "top_p": float(top_p),
            "tools": [t.model_dump() if hasattr(t, "model_dump") else dict(t) for t in tools or []],
            "messages": [dict(m) for m in messages],
        }

        def call() -> dict[str, Any]:
            answer = self.backend.chat(messages, temperature=temperature, top_p=top_p, tools=tools, model=model)
            return asdict(answer)

        return ChatResult(**self.cache.get_or_call(request, call))
