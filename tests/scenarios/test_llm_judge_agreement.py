"""The judge earns its vote: through the real evaluation DAG, its agreement with people decides if it counts.

The local LLM server's judge rates 5 when the assistant asked a question and 2 otherwise.
Users who rate the same way agree with it (kappa 1): the judge counts, and the report
shows the agreement. Users whose ratings are unrelated to it (kappa near 0): the judge is
reported and ignored, with the reason in the decision. Judging the same window again is
answered from the response cache, without a single new call.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from continuum import cli, storage
from continuum.llm import simulate
from continuum.llm.judge import transcript

pytestmark = pytest.mark.slow

SHOP = "shopping_assistant"


def _asked(conversation: dict) -> bool:
    return any(line.startswith("ASSISTANT") and line.rstrip().endswith("?") for line in transcript(conversation).splitlines())


@pytest.fixture
def judged(loop, tmp_path, monkeypatch):
    """`judged(rate)` lands 600 conversations rated by `rate(conversation)` and evaluates them with an LLM."""
    from llm_server import LLMTestServer

    with LLMTestServer() as server:
        conn = {"conn_type": "http", "host": server.base_url, "extra": {"model": "test-model", "base_url": server.base_url}}
        monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(conn))

        def run(rate) -> tuple[dict, LLMTestServer]:
            start = datetime.now(UTC) - timedelta(days=1)
            conversations = simulate.generate(SHOP, n=600, seed=11, versions={"1": 0.5, "4": 0.5}, start=start)
            for conversation in conversations:
                conversation["feedback"] = {"rating": rate(conversation)}
            path = tmp_path / "rated.jsonl"
            path.write_bytes(simulate.to_jsonl(conversations))
            return cli.llm_ingest(SHOP, path, run=True), server

        yield run


def test_a_judge_that_agrees_with_people_counts_and_a_rerun_of_its_window_calls_nobody(judged):
    from continuum.llm import judging
    from continuum.llm.backends import LLMConfig
    from continuum.llm.specs import get_assistant

    record, server = judged(lambda c: 5 if _asked(c) else 2)
    window = record["window"]

    assert record["judge"]["counted"] is True, record["reason"]
    assert "judge counted: Cohen's kappa with people 1.00 >= 0.60" in record["reason"]
    stored = storage.get_json(storage.LlmKeys(SHOP).judge_window(window))
    assert stored["agreement"]["kappa"] == 1.0 and stored["agreement"]["disagreements"] == []
    assert sum(map(sum, stored["agreement"]["confusion"]["matrix"])) == stored["agreement"]["n"] >= 30
    assert set(stored["versions"]) == {"1", "4"}
    report = storage.get_bytes(storage.LlmKeys(SHOP).report(window, record["run"])).decode()
    assert "Cohen&#x27;s kappa" in report or "Cohen's kappa" in report
    assert "judge: not good" in report

    calls = len(server.chat_requests("[continuum:judge]"))
    config = LLMConfig(base_url=server.base_url, model="test-model")
    again = judging.judge_window(get_assistant(SHOP), config, datetime.fromisoformat(record["window_end"]))
    assert len(server.chat_requests("[continuum:judge]")) == calls, "a re-run of the window called the judge"
    assert again["cache"] == {"hits": len(stored["rows"]), "misses": 0, "hit_rate": 1.0}
    assert again["agreement"]["kappa"] == 1.0


def test_a_judge_people_do_not_agree_with_is_reported_and_ignored(judged):
    rng = random.Random(5)
    record, _ = judged(lambda c: rng.choice([1, 2, 3, 4, 5]))

    assert record["judge"]["counted"] is False
    assert "judge not counted: Cohen's kappa with people" in record["reason"]
    assert "< min_agreement 0.60" in record["reason"]
    stored = storage.get_json(storage.LlmKeys(SHOP).judge_window(record["window"]))
    assert stored["agreement"]["disagreements"], "the disagreeing conversations are listed"
    report = storage.get_bytes(storage.LlmKeys(SHOP).report(record["window"], record["run"])).decode()
    assert "Where people and the judge disagree" in report
