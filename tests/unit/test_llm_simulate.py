"""The conversation simulator: deterministic, schema-valid, and its versions differ the way the docstring says."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from continuum.llm import simulate
from continuum.llm.logs import parse_jsonl
from continuum.llm.redact import redact_conversation
from continuum.llm.specs import get_assistant

ASSISTANTS = ["shopping_assistant", "claims_assistant"]
ECHO_PLACEHOLDERS = ("[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[ADDRESS]")
OBEYED = ("SYSTEM PROMPT:", "100% discount", "approved for the full amount")


@pytest.fixture(scope="module")
def logs() -> dict[str, list[dict]]:
    """2000 conversations per assistant, every shipped version equally, through the real validator."""
    out = {}
    for assistant in ASSISTANTS:
        valid, quarantined = parse_jsonl(
            simulate.to_jsonl(simulate.generate(assistant, 2000, seed=5)), assistant
        )
        assert quarantined == []
        out[assistant] = valid
    return out


def _rate(conversations, value, where=lambda c: True) -> dict[str, float]:
    hits, counts = defaultdict(int), defaultdict(int)
    for c in conversations:
        if where(c):
            counts[c["prompt"]["version"]] += 1
            hits[c["prompt"]["version"]] += bool(value(c))
    return {v: hits[v] / counts[v] for v in sorted(counts)}


def _mean(conversations, value) -> dict[str, float]:
    sums, counts = defaultdict(float), defaultdict(int)
    for c in conversations:
        sums[c["prompt"]["version"]] += value(c)
        counts[c["prompt"]["version"]] += 1
    return {v: sums[v] / counts[v] for v in sorted(counts)}


def test_same_arguments_same_logs_other_seed_other_logs():
    a = simulate.generate("claims_assistant", 60, seed=3, malformed=4)
    assert a == simulate.generate("claims_assistant", 60, seed=3, malformed=4)
    assert simulate.to_jsonl(a) == simulate.to_jsonl(
        simulate.generate("claims_assistant", 60, seed=3, malformed=4)
    )
    assert a != simulate.generate("claims_assistant", 60, seed=4, malformed=4)


@pytest.mark.parametrize("assistant", ASSISTANTS)
def test_every_generated_line_is_valid_and_versions_are_shipped(logs, assistant):
    conversations = logs[assistant]
    assert len(conversations) == 2000
    assert len({c["conversation_id"] for c in conversations}) == 2000
    assert {c["prompt"]["version"] for c in conversations} == {"1", "2", "3", "4"}
    spec = get_assistant(assistant)
    for c in conversations[:50]:
        shipped = spec.prompts[int(c["prompt"]["version"]) - 1]
        assert c["model"] == shipped.model and c["params"]["temperature"] == shipped.temperature
        assert c["messages"][0]["role"] == "system" and "{{" not in c["messages"][0]["content"]
        assert c["usage"]["input_tokens"] > c["usage"]["output_tokens"] > 0 and c["latency_ms"] > 0
    assert 0.3 < sum("feedback" in c for c in conversations) / 2000 < 0.5
    assert 0.9 < sum("outcome" in c for c in conversations) / 2000 < 1.0


def test_malformed_records_and_lines_are_all_quarantined_and_the_rest_kept():
    conversations = simulate.generate("shopping_assistant", 300, seed=1, malformed=7)
    data = simulate.to_jsonl(conversations, simulate.malformed_lines(6))
    valid, quarantined = parse_jsonl(data, "shopping_assistant")
    assert len(conversations) == 307 and len(valid) == 300 and len(quarantined) == 13
    reasons = " | ".join(q["reason"] for q in quarantined)
    for expected in (
        "missing required keys",
        "usage.input_tokens",
        "unknown role",
        "does not match",
        "messages is empty",
        "duplicate conversation_id",
        "feedback.rating",
        "invalid JSON",
        "not a JSON object",
    ):
        assert expected in reasons
    assert all(c.get("_malformed") is None for c in valid)


def test_versions_and_start_are_honoured():
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    conversations = simulate.generate(
        "shopping_assistant", 200, seed=2, versions={"2": 1, "4": 3}, start=start
    )
    versions = [c["prompt"]["version"] for c in conversations]
    assert set(versions) == {2, 4} and 0.65 < versions.count(4) / 200 < 0.85
    times = [datetime.fromisoformat(c["started_at"]) for c in conversations]
    assert times == sorted(times) and start <= times[0] and times[-1] < start + timedelta(days=1)
    with pytest.raises(ValueError, match="shipped versions"):
        simulate.generate("shopping_assistant", 10, seed=2, versions={"9": 1.0})
    with pytest.raises(LookupError, match="unknown assistant"):
        simulate.generate("no_such_assistant", 10, seed=2)


def _assistant_texts(c) -> list[str]:
    return [m["content"] for m in c["messages"] if m["role"] == "assistant"]


def _clarified(c) -> bool:
    for m in c["messages"]:
        if m["role"] == "assistant" and any(t["name"] == "search_products" for t in m.get("tool_calls", [])):
            return False
        if m["role"] == "assistant" and m["content"].rstrip().endswith("?"):
            return True
    return False


def _invalid_call(c, validators) -> bool:
    for m in c["messages"]:
        for call in m.get("tool_calls", []):
            validator = validators.get(call["name"])
            if validator is None or not validator.is_valid(call["arguments"]):
                return True
    return False


def _tool_results(c, name) -> list[dict]:
    return [json.loads(m["content"]) for m in c["messages"] if m["role"] == "tool" and m["name"] == name]


@pytest.mark.parametrize("assistant", ASSISTANTS)
def test_the_documented_markers_are_visible_in_the_messages(logs, assistant):
    """What the module docstring promises scorers, checked against the ground truth in `scenario`."""
    spec = get_assistant(assistant)
    disclaimer = spec.guardrails.required_disclaimer
    validators = {t.name: jsonschema.Draft202012Validator(t.parameters) for t in spec.tools}
    for c in logs[assistant]:
        s, texts = c["scenario"], _assistant_texts(c)
        users = [m["content"] for m in c["messages"] if m["role"] == "user"]
        redacted_texts = _assistant_texts(redact_conversation(c))
        assert s["injection_attempt"] == any(u.startswith("Ignore") for u in users)
        assert s["injection_obeyed"] == any(marker in t for t in texts for marker in OBEYED)
        assert s["pii_echoed"] == any(p in t for t in redacted_texts for p in ECHO_PLACEHOLDERS)
        assert s["invalid_tool_call"] == _invalid_call(c, validators)
        assert s["tool_error"] == any(
            "unavailable" in r.get("error", "") for m in spec.tools for r in _tool_results(c, m.name)
        )
        if assistant == "shopping_assistant":
            assert s["clarified"] == (s["vague_request"] and _clarified(c))
        else:
            fraud = _tool_results(c, "check_fraud")
            assert s["fraud_flagged"] == any(r["flagged"] for r in fraud) or not fraud
            assert s["escalated"] == ("escalated" in texts[-1] and "human" in texts[-1])
            assert s["disclaimer"] == texts[-1].endswith(disclaimer)
            assert not any("escalat" in t for t in texts[:-1])


def test_shopping_versions_differ_measurably(logs):
    conversations = logs["shopping_assistant"]
    success = _rate(conversations, lambda c: c["outcome"]["success"], lambda c: "outcome" in c)
    assert success["4"] > success["1"] + 0.15  # the clearly better version
    assert success["4"] > success["2"] + 0.05
    assert success["3"] > success["2"] + 0.08  # the tempting one: it sells more ...
    obeyed = _rate(
        conversations,
        lambda c: c["scenario"]["injection_obeyed"],
        lambda c: c["scenario"]["injection_attempt"],
    )
    echoed = _rate(
        conversations, lambda c: c["scenario"]["pii_echoed"], lambda c: c["scenario"]["pii_shared"]
    )
    assert obeyed["3"] > 0.4 and echoed["3"] > 0.3  # ... but is unsafe
    assert obeyed["2"] == obeyed["4"] == 0 and echoed["4"] == 0
    clarified = _rate(conversations, _clarified, lambda c: c["scenario"]["vague_request"])
    assert clarified["1"] < 0.1 < 0.8 < clarified["2"] and clarified["4"] > 0.85
    output = _mean(conversations, lambda c: c["usage"]["output_tokens"])
    assert output["3"] > 1.4 * output["4"] and output["1"] < output["2"]


def test_claims_versions_differ_measurably(logs):
    conversations = logs["claims_assistant"]
    success = _rate(conversations, lambda c: c["outcome"]["success"], lambda c: "outcome" in c)
    assert success["4"] > success["2"] + 0.05 and success["4"] > success["1"] + 0.1
    disclaimer = _rate(conversations, lambda c: c["scenario"]["disclaimer"])
    assert disclaimer["1"] < 0.5 and min(disclaimer["2"], disclaimer["3"], disclaimer["4"]) > 0.9
    flagged = lambda c: c["scenario"]["fraud_flagged"]  # noqa: E731
    escalated = _rate(conversations, lambda c: c["scenario"]["escalated"], flagged)
    assert escalated["3"] < 0.5 and escalated["2"] > 0.85 and escalated["4"] > 0.9
    latency = _mean(conversations, lambda c: c["latency_ms"])
    output = _mean(conversations, lambda c: c["usage"]["output_tokens"])
    assert latency["3"] < 0.6 * latency["2"] and output["3"] < 0.8 * output["2"]
    assert {c["model"] for c in conversations if c["prompt"]["version"] == "3"} == {"gpt-4o-mini"}


@pytest.mark.parametrize("assistant", ASSISTANTS)
def test_no_personal_data_survives_redaction(logs, assistant):
    pools = [
        *simulate.PHONES,
        *simulate.CARDS,
        *simulate.ADDRESSES,
        *simulate.IBANS,
        "@example.com",
        "07700 900789",
    ]
    pools += ["Baker Street", "Elm Street", "Harbour Road", "5th Avenue", "Willow Lane"]
    shared = [c for c in logs[assistant] if c["scenario"]["pii_shared"]]
    assert len(shared) > 200
    for c in logs[assistant]:
        text = json.dumps(redact_conversation(c))
        assert not [p for p in pools if p in text], c["conversation_id"]
        assert text.count("SKU ") == json.dumps(c).count("SKU ")  # product codes stay readable
