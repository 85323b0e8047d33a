"""Conversation log validation: good lines come back normalised, every kind of bad line is quarantined."""

from __future__ import annotations

import copy
import json

import pytest

from continuum.llm.logs import RAW_LIMIT, REQUIRED_KEYS, Conversation, parse_jsonl

ASSISTANT = "shopping_assistant"
EXAMPLE = {  # the example of the issue, plus an extra key
    "conversation_id": "c-0001",
    "assistant": ASSISTANT,
    "prompt": {"name": ASSISTANT, "version": 3},
    "model": "gpt-4o-mini",
    "params": {"temperature": 0.3, "top_p": 0.9},
    "started_at": "2026-11-28T10:00:00Z",
    "messages": [
        {"role": "user", "content": "a gift for my niece"},
        {
            "role": "assistant",
            "content": "Let me search.",
            "tool_calls": [{"name": "search_products", "arguments": {"query": "paint set"}}],
        },
        {"role": "tool", "name": "search_products", "content": '{"results": []}'},
    ],
    "usage": {"input_tokens": 812, "output_tokens": 164},
    "latency_ms": 1830,
    "feedback": {"rating": 5},
    "outcome": {"success": True},
    "channel": "web",
}


def _line(record) -> bytes:
    return json.dumps(record).encode() + b"\n"


def _changed(**changes) -> dict:
    record = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        if value is None:
            del record[key]
        else:
            record[key] = value
    return record


def test_the_issue_example_is_valid_and_keeps_its_shape():
    valid, quarantined = parse_jsonl(_line(EXAMPLE), ASSISTANT)
    assert quarantined == []
    (conversation,) = valid
    expected = {**copy.deepcopy(EXAMPLE), "prompt": {"name": ASSISTANT, "version": "3"}}
    assert conversation == expected  # same keys, extra key kept, ints stay ints, version as text
    assert isinstance(conversation["latency_ms"], int)
    json.dumps(conversation)  # JSON-safe


def test_optional_keys_may_be_missing_and_variants_are_normalised():
    record = _changed(feedback=None, outcome=None, started_at="2026-11-28T11:00:00+01:00")
    record["prompt"]["version"] = "4"
    record["messages"][1] = {
        "role": "assistant",
        "content": None,  # what OpenAI logs when the reply is only tool calls
        "tool_calls": [{"name": "search_products", "arguments": '{"query": "paint set", "max_price": 30}'}],
    }
    (conversation,), quarantined = parse_jsonl(_line(record), ASSISTANT)
    assert quarantined == []
    assert "feedback" not in conversation and "outcome" not in conversation
    assert conversation["started_at"] == "2026-11-28T10:00:00Z"
    assert conversation["prompt"]["version"] == "4"
    assert conversation["messages"][1]["tool_calls"][0]["arguments"] == {
        "query": "paint set",
        "max_price": 30,
    }


def test_naive_timestamps_are_utc():
    conversation = Conversation.model_validate(_changed(started_at="2026-11-28T10:00:00"))
    assert conversation.started_at.utcoffset().total_seconds() == 0


def _with_message(message: dict) -> dict:
    record = copy.deepcopy(EXAMPLE)
    record["messages"].append(message)
    return record


BAD_LINES = {
    "invalid JSON": (b'{"conversation_id": "c-1", ', "invalid JSON"),
    "not an object": (b"[1, 2, 3]", "not a JSON object (got array)"),
    "missing keys": (_line(_changed(usage=None, model=None)).strip(), "missing required keys: model, usage"),
    "other assistant": (
        _line(_changed(assistant="claims_assistant")).strip(),
        "'claims_assistant' does not match",
    ),
    "empty messages": (_line(_changed(messages=[])).strip(), "messages is empty"),
    "unknown role": (
        _line(_with_message({"role": "bot", "content": "hi"})).strip(),
        "unknown role 'bot' at messages[3]",
    ),
    "tokens as text": (
        _line(_changed(usage={"input_tokens": "812", "output_tokens": 1})).strip(),
        "usage.input_tokens",
    ),
    "rating out of range": (_line(_changed(feedback={"rating": 6})).strip(), "feedback.rating"),
    "success not a bool": (_line(_changed(outcome={"success": "yes"})).strip(), "outcome.success"),
    "bad timestamp": (_line(_changed(started_at="yesterday")).strip(), "started_at"),
    "tool message without name": (
        _line(_with_message({"role": "tool", "content": "{}"})).strip(),
        "messages[3]",
    ),
    "arguments not an object": (
        _line(
            _with_message({"role": "assistant", "tool_calls": [{"name": "x", "arguments": "not json"}]})
        ).strip(),
        "messages[3].tool_calls[0].arguments",
    ),
    "temperature as text": (
        _line(_changed(params={"temperature": "0.3", "top_p": 1})).strip(),
        "params.temperature: Input should be a number",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_each_kind_of_bad_line_is_quarantined_with_a_one_line_reason(name):
    raw, reason = BAD_LINES[name]
    data = _line(EXAMPLE) + raw + b"\n"
    valid, quarantined = parse_jsonl(data, ASSISTANT)
    assert [c["conversation_id"] for c in valid] == ["c-0001"]
    (record,) = quarantined
    assert record["line"] == 2
    assert reason in record["reason"], record["reason"]
    assert "\n" not in record["reason"]
    assert record["raw"] == raw.decode()


def test_duplicates_keep_the_first_valid_occurrence_and_blank_lines_are_skipped():
    invalid_first = _changed(model=None)
    data = b"\n" + _line(invalid_first) + b"   \n" + _line(EXAMPLE) + _line(EXAMPLE) + b"\r\n"
    valid, quarantined = parse_jsonl(data, ASSISTANT)
    assert len(valid) == 1
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [
        (2, "missing required keys"),
        (5, "duplicate conversation_id 'c-0001' (first on line 4)"),
    ]


def test_raw_is_truncated_and_non_utf8_is_quarantined():
    long_line = b'{"x": "' + b"a" * 5000 + b'"}'
    valid, quarantined = parse_jsonl(long_line + b"\n\xff\xfe\n", ASSISTANT)
    assert valid == []
    assert len(quarantined[0]["raw"]) == RAW_LIMIT
    assert quarantined[0]["reason"].startswith("missing required keys: " + ", ".join(REQUIRED_KEYS[:2]))
    assert quarantined[1]["line"] == 2 and "UTF-8" in quarantined[1]["reason"]


def test_empty_file_is_fine():
    assert parse_jsonl(b"", ASSISTANT) == ([], [])
