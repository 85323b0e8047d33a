"""Replay, rubrics and the prompt optimiser against the local OpenAI-compatible test server."""

from __future__ import annotations

import pytest
from llm_server import CLARIFYING_REPLY, IMPROVEMENTS, MODEL_ID, OPTIMIZER_TAG, LLMTestServer

from continuum.llm.backends import ChatResult, LLMConfig, OpenAICompatibleBackend
from continuum.llm.judge import rubric_for
from continuum.llm.optimizer import propose
from continuum.llm.replay import UNAVAILABLE, render, replay
from continuum.llm.specs import AssistantSpec

SEARCH = {
    "name": "search_products",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
}
SHOPPING = AssistantSpec(
    name="shopping_assistant",
    description="Helps a shopper find products",
    owner="retail-team",
    business="retail",
    primary_score="outcome",
    tools=[SEARCH],
    price={"input_per_1k": 0.00015, "output_per_1k": 0.0006},
    guardrails={"clarify_vague_requests": True},
)
CLAIMS = AssistantSpec(
    name="claims_helper",
    description="Processes claims",
    owner="claims-team",
    business="insurance",
    primary_score="outcome",
    price={"input_per_1k": 0.001, "output_per_1k": 0.002},
    guardrails={"required_disclaimer": "This is not legal advice.", "escalate_suspected_fraud": True},
)


def logged_conversation(*user_turns: str, tool_results: tuple[str, ...] = ("Trail X, 89 EUR",)) -> dict:
    messages = []
    for i, text in enumerate(user_turns):
        messages.append({"role": "user", "content": text})
        if i < len(tool_results):
            messages.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"name": "search_products", "arguments": {"query": text}}],
                }
            )
            messages.append({"role": "tool", "name": "search_products", "content": tool_results[i]})
        messages.append({"role": "assistant", "content": "Here you go."})
    return {
        "conversation_id": "c-0001",
        "assistant": "shopping_assistant",
        "prompt": {"name": "shopping_assistant", "version": "3"},
        "model": "gpt-4o-mini",
        "params": {"temperature": 0.3, "top_p": 0.9},
        "started_at": "2026-11-28T10:00:00Z",
        "messages": messages,
        "usage": {"input_tokens": 812, "output_tokens": 164},
        "latency_ms": 1830,
        "feedback": {"rating": 5},
        "outcome": {"success": True},
        "channel": "web",
    }


@pytest.fixture
def llm_server():
    with LLMTestServer() as server:
        yield server


@pytest.fixture
def backend(llm_server):
    return OpenAICompatibleBackend(LLMConfig(base_url=llm_server.base_url, model=MODEL_ID, backoff_s=0))


# -- replay ------------------------------------------------------------------------------


def test_replay_sends_the_candidate_prompt_and_answers_tools_from_the_log(llm_server, backend):
    original = logged_conversation("I want to buy running shoes")
    candidate = "You are a shop assistant for {{ shop }}. Be brief."

    out = replay(
        backend,
        original,
        candidate,
        {"temperature": 0.1, "top_p": 0.8},
        [SEARCH],
        version="7",
        variables={"shop": "Acme"},
    )

    sent = llm_server.chat_requests()
    assert all(
        b["messages"][0] == {"role": "system", "content": "You are a shop assistant for Acme. Be brief."}
        for b in sent
    )
    assert [b["temperature"] for b in sent] == [0.1, 0.1]
    assert sent[1]["messages"][-1]["content"] == "Trail X, 89 EUR"  # the logged result, not an invented one
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert out["messages"][1]["tool_calls"] == [
        {"name": "search_products", "arguments": {"query": "I want to buy running shoes"}}
    ]
    assert out["messages"][-1]["content"] == "Here is what I found: Trail X, 89 EUR"
    assert out["prompt"] == {"name": "shopping_assistant", "version": "7"}
    assert out["params"] == {"temperature": 0.1, "top_p": 0.8}
    assert out["replayed_from"] == "c-0001" and out["conversation_id"] != "c-0001"
    assert out["model"] == MODEL_ID
    assert out["usage"]["input_tokens"] > 0 and out["usage"] != original["usage"]
    # The original user's rating and outcome are not the candidate's.
    assert "feedback" not in out and "outcome" not in out
    assert out["channel"] == "web" and out["started_at"] == original["started_at"]
    assert out["replay"] == {"tool_calls": 1, "tool_results_missing": 0, "truncated": False}
    assert original["messages"][0]["content"] == "I want to buy running shoes"  # input untouched


def test_replay_through_a_clarifying_prompt_asks_first(llm_server, backend):
    original = logged_conversation("a gift for my niece", "she likes art, around 30 EUR", tool_results=())
    template = "Ask a clarifying question when the request is vague."

    out = replay(backend, original, template, {"temperature": 0.3, "top_p": 1.0}, [SEARCH])

    assert out["messages"][1] == {"role": "assistant", "content": CLARIFYING_REPLY}
    assert [m["content"] for m in out["messages"] if m["role"] == "user"] == [
        "a gift for my niece",
        "she likes art, around 30 EUR",
    ]
    assert llm_server.chat_requests()[0]["messages"][0]["content"] == template


def test_a_tool_call_the_log_cannot_answer_gets_an_explicit_unavailable_result(backend):
    original = logged_conversation(
        "I want to buy shoes", "and I need socks", tool_results=("Trail X, 89 EUR",)
    )

    out = replay(backend, original, "Be brief.", {"temperature": 0, "top_p": 1}, [SEARCH])

    tool_contents = [m["content"] for m in out["messages"] if m["role"] == "tool"]
    assert tool_contents == ["Trail X, 89 EUR", UNAVAILABLE.format(name="search_products")]
    assert out["replay"]["tool_results_missing"] == 1


class LoopingBackend:
    """Calls a tool whenever it may: the replay has to stop it."""

    def __init__(self):
        self.offered: list[bool] = []

    def chat(self, messages, *, temperature, top_p, tools=None, model=None):
        self.offered.append(bool(tools))
        if tools:
            return ChatResult(
                content="", tool_calls=[{"name": "search_products", "arguments": {}}], latency_ms=5
            )
        return ChatResult(content="done", usage={"input_tokens": 1, "output_tokens": 1}, latency_ms=5)


def test_tool_loops_and_turns_are_bounded():
    fake = LoopingBackend()
    original = logged_conversation("one", "two", "three", tool_results=())

    out = replay(fake, original, "t", {}, [SEARCH], max_turns=2, max_tool_rounds=2)

    assert fake.offered == [True, True, False, True, True, False]
    assert [m["content"] for m in out["messages"] if m["role"] == "user"] == ["one", "two"]
    assert out["replay"] == {"tool_calls": 4, "tool_results_missing": 4, "truncated": True}
    assert out["latency_ms"] == 30 and out["usage"] == {"input_tokens": 2, "output_tokens": 2}


def test_render_fills_known_variables_and_neutralises_unknown_ones():
    assert render("Hi {{name}}, {{ other }}!", {"name": "Ann"}) == "Hi Ann, the other!"
    assert render("Talking to {{customer_name}}.") == "Talking to the customer."
    assert render("no variables {here}") == "no variables {here}"


# -- judge -------------------------------------------------------------------------------


def test_rubrics_for_shipped_and_other_assistants():
    assert "clarifying question" in rubric_for("shopping_assistant")
    assert "disclaimer" in rubric_for("claims_assistant") and "fraud" in rubric_for("claims_assistant")
    generic = rubric_for(CLAIMS)
    assert "This is not legal advice." in generic and "fraud" in generic and "clarifying" not in generic


# -- optimiser ---------------------------------------------------------------------------

BASE = "You are a shopping assistant."


def toy_evaluate(template: str, params: dict) -> float:
    """Deterministic stand-in for replay + scoring: rewards the server's improvements and temperature near 0.3."""
    score = 0.3 + 0.2 * (IMPROVEMENTS[0] in template) + 0.1 * (IMPROVEMENTS[1] in template)
    return round(score - 0.2 * abs(params["temperature"] - 0.3), 6)


class Registry:
    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, name, template, params, message):
        self.calls.append((name, template, params, message))
        return str(10 + len(self.calls))


def failures() -> list[dict]:
    return [
        {
            "conversation_id": "f-1",
            "score": 0.2,
            "messages": [{"role": "user", "content": "a gift for my niece"}],
        },
        {
            "conversation_id": "f-2",
            "score": 0.1,
            "reason": "no question",
            "messages": [{"role": "user", "content": "shoes"}],
        },
        {"conversation_id": "ok", "score": 0.9, "messages": [{"role": "user", "content": "fine"}]},
    ]


def toy_each(evaluate):
    """Held-out scores that agree with the probe: every one of 12 conversations scores what `evaluate` gives."""
    return lambda template, params: [evaluate(template, params)] * 12


def run(
    server: LLMTestServer, seed: int, evaluate=toy_evaluate, rounds: int = 2, population: int = 3, keep=None
):
    backend = OpenAICompatibleBackend(LLMConfig(base_url=server.base_url, model=MODEL_ID, backoff_s=0))
    registry = Registry()
    proposals = propose(
        backend, SHOPPING, BASE, {"temperature": 0.9, "top_p": 1.0, "model": "gpt-4o-mini"}, failures(),
        rounds=rounds, population=population, seed=seed, evaluate=evaluate, evaluate_each=toy_each(evaluate),
        register=registry, keep=keep,
    )  # fmt: skip
    return proposals, registry


def test_optimizer_registers_only_candidates_that_beat_the_base(llm_server):
    base_score = toy_evaluate(BASE, {"temperature": 0.9})

    proposals, registry = run(llm_server, seed=7)

    assert proposals, "the server's rewrites improve the toy score, so something must be proposed"
    assert len(registry.calls) == len(proposals)
    assert [p["version"] for p in proposals] == [str(11 + i) for i in range(len(proposals))]
    assert all(p["score"] > base_score for p in proposals)
    assert [p["score"] for p in proposals] == sorted((p["score"] for p in proposals), reverse=True)
    best = proposals[0]
    # Two rounds of reflection: each adds one improvement.
    assert IMPROVEMENTS[0] in best["template"] and IMPROVEMENTS[1] in best["template"]
    assert best["params"]["model"] == "gpt-4o-mini"
    assert 0.0 <= best["params"]["temperature"] <= 1.0 and 0.5 <= best["params"]["top_p"] <= 1.0
    for name, template, params, message in registry.calls:
        assert name == "shopping_assistant" and "vs base" in message
        assert toy_evaluate(template, params) > base_score

    meta = llm_server.chat_requests(OPTIMIZER_TAG)
    assert meta, "the rewrites go through the meta-prompt"
    shown = meta[0]["messages"][1]["content"]
    assert f"<current_prompt>\n{BASE}\n</current_prompt>" in shown
    assert "f-1" in shown or "f-2" in shown


def test_optimizer_is_deterministic_for_a_seed():
    with LLMTestServer() as first_server:
        first, _ = run(first_server, seed=3)
    with LLMTestServer() as second_server:
        second, _ = run(second_server, seed=3)
    with LLMTestServer() as other_server:
        other, _ = run(other_server, seed=4)

    assert first == second
    assert [p["params"] for p in first] != [p["params"] for p in other]


def test_keep_limits_registrations_to_the_best(llm_server):
    everything, _ = run(llm_server, seed=7)
    with LLMTestServer() as server:
        kept, registry = run(server, seed=7, keep=1)

    assert len(everything) > 1
    assert len(registry.calls) == 1 and [p["template"] for p in kept] == [everything[0]["template"]]


def test_nothing_is_registered_when_nothing_beats_the_base(llm_server):
    def base_is_best(template: str, params: dict) -> float:
        return 1.0 if template == BASE and params["temperature"] == 0.9 else 0.5

    proposals, registry = run(llm_server, seed=1, evaluate=base_is_best)

    assert proposals == [] and registry.calls == []


class ScriptedRewriter:
    """Answers every meta-prompt with the same scripted text."""

    def __init__(self, answer: str):
        self.answer = answer
        self.calls = 0

    def chat(self, messages, *, temperature, top_p, tools=None, model=None):
        self.calls += 1
        return ChatResult(content=self.answer)


@pytest.mark.parametrize(
    "answer",
    [
        "<prompt>Decide claims quickly.</prompt>",  # drops the required disclaimer
        "Decide claims quickly. This is not legal advice.",  # no <prompt> block
        "<prompt>Hello {{ customer }}. This is not legal advice.</prompt>",  # invents a variable
        "<prompt>Process claims. This is not legal advice.</prompt>",  # unchanged
    ],
)
def test_rewrites_that_break_constraints_are_rejected(answer):
    base = "Process claims. This is not legal advice."
    evaluated: list[str] = []

    def evaluate(template: str, params: dict) -> float:
        evaluated.append(template)
        return 0.9 if template != base else 0.1  # any rewrite that got through would win

    rewriter = ScriptedRewriter(answer)
    proposals = propose(
        rewriter, CLAIMS, base, {"temperature": 0.0, "top_p": 1.0}, [],
        rounds=1, population=2, seed=0, evaluate=evaluate, evaluate_each=toy_each(evaluate),
        register=Registry(),
        temperature_bounds=(0.0, 0.0), top_p_bounds=(1.0, 1.0),
    )  # fmt: skip

    assert rewriter.calls == 2
    assert evaluated == [base] and proposals == []


def test_propose_rejects_an_empty_population():
    with pytest.raises(ValueError, match="population"):
        propose(
            ScriptedRewriter(""),
            SHOPPING,
            BASE,
            {},
            [],
            rounds=1,
            population=0,
            seed=0,
            evaluate=toy_evaluate,
            evaluate_each=toy_each(toy_evaluate),
            register=Registry(),
        )
