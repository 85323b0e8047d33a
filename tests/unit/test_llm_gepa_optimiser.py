"""`live.optimise` with GEPA (MLflow's GepaPromptOptimizer via gepa and litellm) on a real MLflow store.

The local test server plays every model: GEPA's reflection (through litellm) proposes
production's prompt plus `GIFT_RULE`, replays ask a question only where the customer mentions
a gift, and the judge rates a question 5 of 5 (score 1.0) and anything else 2 (0.4). GEPA searches on a probe
where every customer mentions a gift, so its proposal always wins there; whether it is
registered depends only on the held-out conversations, which the test writes: most of them
mention a gift (a real gain) or one in twelve does (a probe win that does not generalise).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import probe_assistant
import pytest
from llm_server import GEPA_MARK, GIFT_RULE, MODEL_ID, LLMTestServer

from continuum.llm import evaluation, gepa_proposer, live, prompts
from continuum.llm.backends import LLMConfig
from continuum.llm.optimizer import split
from continuum.llm.specs import AssistantSpec

WINDOW_END = datetime(2026, 11, 29, tzinfo=UTC)
BASE = "You are the shop assistant. Help customers find products."
PROBE, HELDOUT, TOTAL, SEED = 6, 12, 24, 0
KEY = "test-key"


def make_spec() -> AssistantSpec:
    return probe_assistant.spec(
        tools=[{"name": "search_products", "parameters": {"type": "object", "properties": {}}}],
        prompts=[{"template": BASE}],
    )


def conversation(cid: str, i: int, gift: bool) -> dict:
    ask = "I am looking for a gift for my sister" if gift else "I need running shoes under $80"
    return {
        "conversation_id": cid,
        "assistant": "shop",
        "prompt": {"name": "shop", "version": 1},
        "model": "gpt-4o-mini",
        "params": {"temperature": 0.3, "top_p": 0.9},
        "started_at": (WINDOW_END - timedelta(hours=1 + i)).isoformat(),
        "messages": [
            {"role": "user", "content": ask},
            {"role": "assistant", "content": "Searching.", "tool_calls": [{"name": "search_products", "arguments": {}}]},
            {"role": "tool", "name": "search_products", "content": "SKU 123 Trail runner $79"},
            {"role": "assistant", "content": "The Trail runner (SKU 123) costs $79."},
        ],
        "usage": {"input_tokens": 800, "output_tokens": 150},
        "latency_ms": 1500.0,
        "outcome": {"success": False},
        "scenario": "test-only",
    }


def land(store, heldout_gifts: int) -> dict[str, list[str]]:
    """A window whose probe all mention a gift and whose first `heldout_gifts` held-out ones do."""
    ids = [f"c{i:02d}" for i in range(TOTAL)]
    probe, heldout, rest = (
        [c["conversation_id"] for c in part] for part in split([{"conversation_id": i} for i in ids], PROBE, HELDOUT, SEED)
    )
    gifts = set(probe) | set(heldout[:heldout_gifts])
    lines = [json.dumps(conversation(cid, i, cid in gifts)) for i, cid in enumerate(ids)]
    store.put_bytes("llm/conversations/shop/day.jsonl", ("\n".join(lines) + "\n").encode())
    spec = make_spec()
    evaluation.validate_and_redact(spec)
    prompts.seed(spec)
    return {"probe": probe, "heldout": heldout, "rest": rest}


@pytest.fixture
def store(s3, mlflow_store, monkeypatch):
    # What a worker might have in its environment must not be what litellm uses.
    monkeypatch.setenv("OPENAI_API_KEY", "from-the-environment")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_ORGANIZATION", "org-from-the-environment")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-the-environment")
    return s3


@pytest.fixture
def server():
    with LLMTestServer(api_key=KEY) as running:
        running.gepa_additions = (GIFT_RULE,)
        yield running


def optimise(server, **kwargs) -> dict:
    config = LLMConfig(base_url=server.base_url, api_key=KEY, model=MODEL_ID, max_retries=0)
    return live.optimise(
        make_spec(), config, WINDOW_END, rounds=1, population=2, sample=PROBE, heldout=HELDOUT, seed=SEED,
        gepa_metric_calls=24, **kwargs,
    )  # fmt: skip


def reflections(server) -> list[dict]:
    """GEPA's reflection requests with how they were sent (auth header)."""
    return [r for r in server.requests if r["body"] and GEPA_MARK in str(r["body"]["messages"][-1]["content"])]


def test_a_gepa_proposal_that_gains_held_out_is_registered_once_for_the_window(store, server):
    split_ids = land(store, heldout_gifts=10)
    decision = optimise(server)

    assert decision["optimiser"]["text"] == "gepa"
    assert decision["optimiser"]["gepa"]["proposals"] == [f"{BASE} {GIFT_RULE}"]
    assert 0 < decision["optimiser"]["gepa"]["metric_calls"] <= 24
    asked = reflections(server)
    assert asked, "GEPA's reflection went to the configured endpoint"
    assert {r["auth"] for r in asked} == {f"Bearer {KEY}"}, "the key from llm_default, not OPENAI_API_KEY"
    assert not {h for r in asked for h in r["headers"] if h in ("openai-organization", "openai-project")}
    assert {r["body"]["model"] for r in asked} == {MODEL_ID}
    assert decision["probe"] == split_ids["probe"] and decision["heldout"] == split_ids["heldout"]

    [finalist] = decision["finalists"]
    assert finalist["origin"] == "gepa" and finalist["template"] == f"{BASE} {GIFT_RULE}"
    assert finalist["heldout"]["n"] == HELDOUT and finalist["heldout"]["lower"] > 0
    assert finalist["registered"] and decision["registered"][0]["version"] == finalist["version"]
    version = prompts.versions("shop")[-1]
    assert version["version"] == finalist["version"] and version["template"] == f"{BASE} {GIFT_RULE}"
    assert version["tags"][prompts.WINDOW_TAG] == decision["window"]
    assert finalist["version"] in prompts.candidates("shop")
    assert store.get_json(store.LlmKeys("shop").optimiser(decision["window"])) == decision

    before, seen = prompts.versions("shop"), len(server.requests)
    again = optimise(server)
    assert prompts.versions("shop") == before, "a rerun of the window registers nothing new"
    assert len(server.requests) == seen, "nor searches again"
    assert [r["version"] for r in again["registered"]] == [finalist["version"]]


def test_a_gepa_probe_win_that_does_not_generalise_is_not_registered(store, server):
    land(store, heldout_gifts=1)
    before = prompts.versions("shop")
    decision = optimise(server)

    assert decision["optimiser"]["text"] == "gepa" and reflections(server)
    [finalist] = decision["finalists"]
    assert finalist["origin"] == "gepa" and finalist["probe_gain"] == pytest.approx(0.6)
    # One held-out conversation in twelve gains 0.6: a positive mean, but not with confidence.
    assert finalist["heldout"]["gain"] == pytest.approx(0.6 / HELDOUT, abs=1e-6)
    assert not finalist["registered"] and decision["registered"] == []
    assert prompts.versions("shop") == before
    assert finalist["heldout"]["lower"] <= 0 and "not positive with 95% confidence" in finalist["reason"]


def test_without_gepa_the_reflection_loop_runs_and_the_decision_says_why(store, server, monkeypatch):
    land(store, heldout_gifts=10)
    monkeypatch.setattr(gepa_proposer, "unavailable", lambda: "the gepa package is not installed")
    decision = optimise(server)

    assert decision["optimiser"] == {
        "text": "reflection",
        "why": "GEPA is not available (the gepa package is not installed): the reflection loop ran instead",
    }
    assert reflections(server) == [] and decision["finalists"][0]["origin"] == "rewrite"
    with pytest.raises(ValueError, match="text_optimiser=gepa cannot run: the gepa package is not installed"):
        optimise(server, text_optimiser="gepa")


def test_gepa_is_unavailable_without_its_packages_or_below_the_version_mlflow_needs(monkeypatch):
    import importlib.metadata

    installed = {"gepa": "0.0.25", "litellm": "1.0"}

    def version(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert gepa_proposer.unavailable() == "gepa 0.0.25 is older than 0.0.26, which MLflow's GepaPromptOptimizer needs"
    installed["gepa"] = "0.1.4"
    assert gepa_proposer.unavailable() is None
    del installed["litellm"]
    assert gepa_proposer.unavailable() == "the litellm package is not installed"
