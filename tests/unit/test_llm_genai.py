"""Continuum's scorers through `mlflow.genai.evaluate`: the values MLflow shows are the values Continuum compares."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from continuum.llm import evaluation, genai, simulate
from continuum.llm.scorers import SCORES, score_table
from continuum.llm.specs import get_assistant

SHOP = "shopping_assistant"


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return b is not None and a == pytest.approx(b)


def test_genai_evaluate_gives_the_values_of_the_score_table(mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    import mlflow

    spec = get_assistant(SHOP)
    conversations = simulate.generate(SHOP, n=6, seed=3, versions={"1": 0.5, "4": 0.5}, start=datetime.now(UTC))
    _, references = evaluation.load_reference(spec)
    table = score_table(spec, conversations, references=references).set_index("conversation_id")
    mlflow.set_experiment("genai-check")
    result = mlflow.genai.evaluate(
        data=[genai.row(c) for c in conversations], scorers=genai.scorers_for(spec, references, conversations)
    )
    frame = result.result_df
    assert len(frame) == len(conversations)
    compared = 0
    for _, got in frame.iterrows():
        conversation_id = got["request"]["conversation_id"]
        for name in SCORES:
            assert _same(table.loc[conversation_id, name], got[f"{name}/value"]), (conversation_id, name)
            compared += 1
    assert compared == len(conversations) * len(SCORES)


def test_the_cap_spreads_over_versions_and_is_the_same_on_rerun():
    conversations = simulate.generate(SHOP, n=40, seed=5, versions={"1": 0.5, "4": 0.5}, start=datetime.now(UTC))
    picked = genai.sample(conversations, 10)
    assert set(picked) == {"1", "4"} and all(len(v) == 5 for v in picked.values())
    assert picked == genai.sample(list(reversed(conversations)), 10)
    assert genai.sample(conversations, 0) == {}
