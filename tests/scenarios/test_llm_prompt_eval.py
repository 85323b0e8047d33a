"""The prompt-evaluation DAG on simulated logs, through the real DAGs (`dag.test()`)."""

from __future__ import annotations

import json
import os
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
        optimised = storage.get_json(f"llm/optimiser/{SHOP}/{window}.json")
        assert optimised["optimiser"]["text"] == "gepa", optimised["optimiser"]  # the lock installs gepa
        assert server.gepa_requests(), "GEPA never asked the endpoint for a new instruction"
        replayed_systems = [r["messages"][0]["content"] for r in server.chat_requests(None) if r.get("messages")]
        shipped = {v["version"]: v["template"][:60] for v in prompts.versions(SHOP)}
        assert any(shipped["2"] in system for system in replayed_systems), "candidate 2 was not replayed"


def test_a_production_prompt_breaching_its_guardrail_pages_from_the_health_dag_counts_and_resolves(
    loop, oncall, spec_copy, tmp_path, monkeypatch
):
    """The hourly health DAG reads the production prompt's safety scores of the last day (written by
    `<assistant>_prompt_eval`): over the ceiling it pages Slack, email and the webhook; the next hour
    only counts; once a safe candidate is promoted, the next check sends `resolved` once."""
    from airflow.dag_processing.dagbag import DagBag
    from alert_receivers import MAIL_TO, mail_text

    from continuum import alert_delivery, dagrun
    from continuum.settings import REPO_ROOT

    # A window longer than the hour between two health runs (the default 60 minutes re-sends every hour).
    routes = json.loads(os.environ[alert_delivery.ROUTES_ENV])
    monkeypatch.setenv(alert_delivery.ROUTES_ENV, json.dumps({**routes, "dedup_minutes": 90}))

    probe = "guard_probe"
    # shopping_assistant, with a ceiling its terse v1 breaches (it echoes pasted personal data now and then).
    spec_copy(SHOP, probe, monitoring={"max_safety_rate": 0.001})
    dagrun.reset()
    start = datetime.now(UTC) - timedelta(days=1)

    def evaluate(seed: int, versions: dict[str, float]) -> dict:
        lines = []
        for record in simulate.generate(SHOP, n=900, seed=seed, versions=versions, start=start):
            record.update(assistant=probe, prompt={**record["prompt"], "name": probe})
            lines.append(json.dumps(record))
        path = tmp_path / f"{probe}-{seed}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return cli.llm_ingest(probe, path, run=True)

    kept = evaluate(7, {"1": 0.5, "3": 0.5})  # v3 obeys injections: refused; v1 stays in production
    assert kept["production_after"] == "1" and kept["promoted"] is False
    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "continuum_health.py")).dags["continuum_health"]
    hour = datetime.now(UTC).replace(minute=5, second=0, microsecond=0)

    def breaches() -> list[dict]:
        hooks = [h["body"]["alert"] for h in oncall.http.on("/hook")]
        return [a for a in hooks if a["domain"] == probe and a["kind"] == "prompt_guardrail_breach"]

    first = dag.test(logical_date=hour)
    assert str(first.state) == "success"
    [alert] = breaches()
    assert (alert["dag_id"], alert["task_id"], alert["run_id"], alert["owner"]) == (
        "continuum_health",
        "check",
        first.run_id,
        "digital-commerce",
    )
    assert alert["severity"] == "critical" and alert["facts"]["production"] == "1"
    assert alert["facts"]["rate_pii_echoed"] > 0.001 and alert["facts"]["conversations"] >= 20
    [slack] = [p["body"]["text"] for p in oncall.http.on("/slack/oncall") if "prompt_guardrail_breach" in p["body"]["text"]]
    assert slack.startswith(f"[CRITICAL] prompt_guardrail_breach {probe}: production prompt v1: ")
    [mail] = [m for m in oncall.mail.messages if "prompt_guardrail_breach" in m["Subject"]]
    assert mail["X-Envelope-To"] == MAIL_TO and mail_text(mail) == slack

    second = dag.test(logical_date=hour + timedelta(hours=1))  # the next hour, still breaching: counted
    assert str(second.state) == "success"
    assert len(breaches()) == 1
    [recorded] = alert_delivery.recorded(probe, kind="prompt_guardrail_breach")
    assert recorded["count"] == 2

    promoted = evaluate(8, {"1": 0.5, "4": 0.5})  # v4 is better and safe: promoted
    assert promoted["production_after"] == "4"
    third = dag.test(logical_date=hour + timedelta(hours=1, minutes=20))  # a rerun of that hour
    assert str(third.state) == "success"
    resolved = [h["body"]["alert"] for h in oncall.http.on("/hook") if h["body"]["alert"]["kind"] == "resolved"]
    assert [(a["domain"], a["facts"]["resolves"], a["run_id"]) for a in resolved] == [
        (probe, "prompt_guardrail_breach", third.run_id)
    ]
    [mailed] = [m for m in oncall.mail.messages if m["Subject"].startswith(f"[continuum info] resolved {probe}: ")]
    assert "prompt_guardrail_breach" in mailed["Subject"]
