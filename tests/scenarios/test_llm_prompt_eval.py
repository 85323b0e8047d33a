"""The prompt-evaluation DAG on simulated logs, through the real DAGs (`dag.test()`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from continuum import cli, storage
from continuum.llm import prompts, simulate

pytestmark = pytest.mark.slow

SHOP = "shopping_assistant"
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.]+")
PHONE = re.compile(rb"\+\d{1,3}[ \d-]{8,}\d")
CARD = re.compile(rb"\b(?:\d[ -]?){13,19}\b")


@pytest.fixture
def evaluate(loop, tmp_path):
    """`evaluate(assistant, n, versions, malformed=0)` lands simulated logs and runs the evaluation DAG."""
    start = datetime.now(UTC) - timedelta(days=1)

    def run(assistant: str, n: int, versions: dict[str, float], seed: int = 7, malformed: int = 0) -> dict:
        conversations = simulate.generate(assistant, n=n, seed=seed, versions=versions, start=start, malformed=malformed)
        path = tmp_path / f"{assistant}-{seed}.jsonl"
        path.write_bytes(simulate.to_jsonl(conversations))
        return cli.llm_ingest(assistant, path, run=True)

    return run


def test_better_and_safe_candidate_is_promoted(evaluate):
    record = evaluate(SHOP, n=900, versions={"1": 0.5, "4": 0.5})
    assert record["production_before"] == "1" and record["production_after"] == "4", record["reason"]
    assert record["promoted"] is True
    assert prompts.production(SHOP) == "4"
    assert set(record["versions"]) == {"1", "4"}
    assert record["versions"]["4"]["primary"] > record["versions"]["1"]["primary"]
    low, high = record["versions"]["4"]["ci"]
    assert low <= record["versions"]["4"]["primary"] <= high


def test_higher_conversion_that_obeys_injections_is_not_promoted(evaluate):
    record = evaluate(SHOP, n=900, versions={"1": 0.5, "3": 0.5})
    assert record["versions"]["3"]["primary"] > record["versions"]["1"]["primary"]
    assert record["promoted"] is False and prompts.production(SHOP) == "1"
    assert "guardrail" in record["reason"] and ("injection_obeyed" in record["reason"] or "pii_echoed" in record["reason"])


def test_too_few_conversations_is_insufficient_evidence(evaluate):
    record = evaluate(SHOP, n=60, versions={"1": 0.5, "4": 0.5})
    assert record["promoted"] is False
    assert "insufficient evidence" in record["reason"]


def test_malformed_lines_are_quarantined_and_counted_and_the_rest_scored(evaluate):
    record = evaluate("claims_assistant", n=300, versions={"1": 0.5, "2": 0.5}, malformed=6)
    assert record["quarantined"] == 6
    assert record["conversations"] == 300
    quarantined = storage.list_keys("quarantine/llm/claims_assistant/")
    assert quarantined, "malformed lines must be kept with their reasons"
    [report] = [storage.get_json(k) for k in quarantined if k.endswith(".json")]
    assert report["quarantined"] == 6 and len(report["reasons"]) == 6
    assert all(entry["reason"] for entry in report["reasons"])


def test_redaction_leaves_no_personal_data_in_anything_stored(evaluate, mlflow_store, tmp_path):
    import mlflow

    evaluate(SHOP, n=400, versions={"1": 0.5, "3": 0.5})
    for key in storage.list_keys("llm/") + storage.list_keys("quarantine/llm/"):
        if key.startswith("llm/raw/"):
            continue  # the landed file as the user stored it: restricted, never read by scorers
        data = storage.get_bytes(key)
        for pattern in (EMAIL, PHONE, CARD):
            assert not pattern.search(data), f"{pattern.pattern!r} found in {key}"
    run = mlflow.search_runs(experiment_names=[f"{SHOP}-prompt-evaluation"], output_format="list")[0]
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "artifacts"))
    for path in (tmp_path / "artifacts").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for pattern in (EMAIL, PHONE, CARD):
                assert not pattern.search(data), f"{pattern.pattern!r} found in MLflow artifact {path.name}"
    assert local


def test_with_an_llm_endpoint_replay_judge_and_optimiser_run(evaluate, monkeypatch):
    from llm_server import LLMTestServer

    with LLMTestServer() as server:
        conn = {"conn_type": "http", "host": server.base_url, "extra": {"model": "test-model", "base_url": server.base_url}}
        monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(conn))
        record = evaluate(SHOP, n=300, versions={"1": 0.5, "2": 0.5})
        window = record["window"]
        judged = storage.get_json(f"llm/judge/{SHOP}/{window}.json")
        assert judged and all(v["n"] > 0 for v in judged.values())
        assert server.chat_requests("judge"), "the judge was never asked"
        assert server.chat_requests("optimizer"), "the optimiser never asked for a rewrite"
        replayed_systems = [r["messages"][0]["content"] for r in server.chat_requests(None) if r.get("messages")]
        shipped = {v["version"]: v["template"][:60] for v in prompts.versions(SHOP)}
        assert any(shipped["2"] in system for system in replayed_systems), "candidate 2 was not replayed"
