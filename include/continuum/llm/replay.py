"""Replay: re-run a logged conversation's user turns through a candidate prompt.

Live traffic only ever saw the versions that served it; replay lets a new candidate
answer the same users before anyone is exposed to it. The users' turns are sent as
logged, and when the model calls a tool it gets the result that tool returned in the
original conversation (same name, in order), so no real system is touched; a call the
log cannot answer gets an explicit "unavailable in replay" result instead of an
invented one. The output is a conversation in the log schema, so the same scorers and
the judge read it. Turns and tool loops are bounded: a model that keeps calling tools
costs a known maximum.
"""

from __future__ import annotations

import copy
import json
import re
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from typing import Any

from continuum.llm.backends import ChatBackend

MAX_USER_TURNS = 20
MAX_TOOL_ROUNDS = 4
UNAVAILABLE = "tool result unavailable in replay: the logged conversation has no further result for '{name}'"
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Keys that describe the original run, not the replay: copying them would credit the candidate
# with the original user's rating and outcome.
_NOT_CARRIED = ("feedback", "outcome", "usage", "latency_ms", "messages", "prompt", "params", "model")


def render(template: str, variables: Mapping[str, Any] | None = None) -> str:
    """Fill `{{ name }}` placeholders (MLflow prompt syntax).

    Logs do not carry the values (they are personal data), so an unknown placeholder gets a
    neutral phrase built from its name (`customer_name` -> "the customer"), never raw braces.
    """
    values = variables or {}
    return _VARIABLE.sub(lambda m: str(values.get(m.group(1), _neutral(m.group(1)))), template)


def _neutral(name: str) -> str:
    words = name.removesuffix("_name").replace("_", " ").strip()
    return f"the {words}" if words else "you"


def replay(
    backend: ChatBackend,
    conversation: Mapping[str, Any],
    template: str,
    params: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]],
    *,
    version: str = "candidate",
    variables: Mapping[str, Any] | None = None,
    max_turns: int = MAX_USER_TURNS,
    max_tool_rounds: int = MAX_TOOL_ROUNDS,
) -> dict[str, Any]:
    """The conversation as the candidate (`template`, `params`, labelled `version`) would have had it.

    Backend errors propagate: the caller decides whether one failed replay stops the run.
    """
    results = _logged_tool_results(conversation.get("messages") or [])
    user_turns = [m for m in conversation.get("messages") or [] if m.get("role") == "user"]
    history: list[dict[str, Any]] = [{"role": "system", "content": render(template, variables)}]
    usage = {"input_tokens": 0, "output_tokens": 0}
    latency_ms, calls, missing, truncated, model = 0, 0, 0, len(user_turns) > max_turns, ""
    temperature, top_p = float(params.get("temperature", 0.0)), float(params.get("top_p", 1.0))

    for turn in user_turns[:max_turns]:
        history.append({"role": "user", "content": turn.get("content") or ""})
        for round_ in range(max_tool_rounds + 1):
            # The last round offers no tools, so the model has to answer in words.
            offered = tools if round_ < max_tool_rounds else None
            answer = backend.chat(history, temperature=temperature, top_p=top_p, tools=offered or None)
            usage["input_tokens"] += answer.usage.get("input_tokens", 0)
            usage["output_tokens"] += answer.usage.get("output_tokens", 0)
            latency_ms += answer.latency_ms
            model = answer.model or model
            message: dict[str, Any] = {"role": "assistant", "content": answer.content}
            if not answer.tool_calls:
                history.append(message)
                break
            message["tool_calls"] = [
                {"name": c["name"], "arguments": c["arguments"]} for c in answer.tool_calls
            ]
            history.append(message)
            for call in answer.tool_calls:
                calls += 1
                queue = results.get(call["name"])
                if queue:
                    content = queue.popleft()
                else:
                    missing += 1
                    content = UNAVAILABLE.format(name=call["name"])
                history.append({"role": "tool", "name": call["name"], "content": content})

    replayed = {k: copy.deepcopy(v) for k, v in conversation.items() if k not in _NOT_CARRIED}
    original_id = conversation.get("conversation_id")
    prompt = conversation.get("prompt") or {}
    replayed.update(
        {
            "conversation_id": f"{original_id}-replay-{version}",
            "prompt": {"name": prompt.get("name") or conversation.get("assistant"), "version": str(version)},
            "model": model or params.get("model") or conversation.get("model"),
            "params": {"temperature": temperature, "top_p": top_p},
            "messages": history[1:],  # logs never carry the system prompt
            "usage": usage,
            "latency_ms": latency_ms,
            "replayed_from": original_id,
            "replay": {"tool_calls": calls, "tool_results_missing": missing, "truncated": truncated},
        }
    )
    return replayed


def _logged_tool_results(messages: Sequence[Mapping[str, Any]]) -> dict[str, deque[str]]:
    results: dict[str, deque[str]] = defaultdict(deque)
    for message in messages:
        if message.get("role") == "tool" and message.get("name"):
            content = message.get("content")
            results[message["name"]].append(content if isinstance(content, str) else json.dumps(content))
    return results
