"""Prompt registry rules against a real (SQLite) MLflow store."""

from __future__ import annotations

import probe_assistant
import pytest

from continuum.llm import prompts
from continuum.llm.specs import AssistantSpec


def spec(name="shop", production_flag: int | None = None, count: int = 3) -> AssistantSpec:
    versions = [
        {
            "template": f"You are helper v{i} for {{{{customer_name}}}}.",
            "temperature": 0.1 * i,
            "top_p": 0.9,
            "description": f"v{i}",
        }
        for i in range(1, count + 1)
    ]
    if production_flag:
        versions[production_flag - 1]["production"] = True
    return probe_assistant.spec(name, prompts=versions)


@pytest.fixture
def registry(mlflow_store):
    return prompts


def test_seed_registers_in_order_with_aliases(registry):
    assert registry.seed(spec()) == ["1", "2", "3"]
    listed = registry.versions("shop")
    assert [v["version"] for v in listed] == ["1", "2", "3"]
    assert listed[1]["template"] == "You are helper v2 for {{customer_name}}."
    assert listed[1]["params"] == {"model": "gpt-4o-mini", "temperature": pytest.approx(0.2), "top_p": 0.9}
    assert listed[0]["aliases"] == ["production"] and listed[2]["aliases"] == ["candidate"]
    assert registry.production("shop") == "1"
    assert registry.candidates("shop") == ["2", "3"]


def test_seed_honours_production_flag(registry):
    registry.seed(spec(production_flag=2))
    assert registry.production("shop") == "2"
    assert registry.candidates("shop") == ["3"]  # 1 is older than production and holds no alias


def test_seed_never_touches_an_existing_prompt(registry):
    registry.seed(spec())
    registry.promote("shop", "3")
    assert registry.seed(spec(production_flag=2, count=5)) == []
    assert [v["version"] for v in registry.versions("shop")] == ["1", "2", "3"]
    assert registry.production("shop") == "3"


def test_version_registered_directly_is_a_candidate(registry):
    import mlflow

    registry.seed(spec())
    registry.promote("shop", "2")
    mlflow.genai.register_prompt(
        name="shop", template="Hand-written by an operator.", commit_message="manual"
    )
    assert registry.candidates("shop") == ["3", "4"]
    assert registry.versions("shop")[-1]["template"] == "Hand-written by an operator."


def test_promote_moves_production_and_records_previous(registry):
    import mlflow

    registry.seed(spec())
    result = registry.promote("shop", "3")
    assert result == {"prompt": "shop", "previous": "1", "production": "3"}
    assert registry.production("shop") == "3"
    assert mlflow.MlflowClient().get_prompt("shop").tags[prompts.PREVIOUS_TAG] == "1"
    assert "candidate" not in registry.versions("shop")[2]["aliases"]  # it serves now
    assert registry.promote("shop", "3")["production"] == "3"  # retry: no-op
    assert registry.production("shop") == "3"


def test_register_candidate(registry):
    registry.seed(spec(count=2))
    version = registry.register_candidate(
        "shop", "Be brief.", {"model": "m", "temperature": 0.5, "top_p": 0.8}, "opt"
    )
    assert version == "3"
    entry = registry.versions("shop")[-1]
    assert entry["params"] == {"model": "m", "temperature": 0.5, "top_p": 0.8}
    assert entry["tags"][prompts.SOURCE_TAG] == "optimizer"
    assert "3" in registry.candidates("shop")


def test_unknown_prompt(registry):
    assert registry.production("nothing") is None
    assert registry.versions("nothing") == []
    assert registry.candidates("nothing") == []


# -- an error is not an absence ---------------------------------------------------------------


def _failing_registry(monkeypatch, error: Exception) -> None:
    from mlflow.tracking._model_registry.client import ModelRegistryClient

    def fail(self, name):
        raise error

    monkeypatch.setattr(ModelRegistryClient, "get_registered_model", fail)


@pytest.mark.parametrize("kind", ["mlflow-unavailable", "mlflow-internal", "connection"])
def test_registry_errors_propagate_and_move_no_alias(registry, monkeypatch, kind):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE

    registry.seed(spec())
    error = {
        "mlflow-unavailable": MlflowException("server busy", error_code=TEMPORARILY_UNAVAILABLE),
        "mlflow-internal": MlflowException("database locked", error_code=INTERNAL_ERROR),
        "connection": ConnectionError("connection refused"),
    }[kind]
    with monkeypatch.context() as patched:
        _failing_registry(patched, error)
        for lookup in (registry.production, registry.exists, registry.candidates, registry.versions):
            with pytest.raises(type(error)):
                lookup("shop")
        with pytest.raises(type(error)):
            registry.seed(spec(production_flag=3))  # never re-seeds over a prompt it could not see
        with pytest.raises(type(error)):
            registry.promote("shop", "3")
    assert registry.production("shop") == "1"
    assert [v["version"] for v in registry.versions("shop")] == ["1", "2", "3"]


def test_only_not_found_means_absent(registry):
    assert registry.exists("shop") is False and registry.production("shop") is None
    registry.seed(spec(count=1))
    assert registry.production("shop") == "1"
    assert registry._alias("shop", prompts.CANDIDATE) is None  # a missing alias is not an error


# -- candidates registered once per window, retired after N losses -----------------------------


def test_register_candidate_once_per_window(registry):
    registry.seed(spec(count=2))
    params = {"model": "m", "temperature": 0.5, "top_p": 0.8}
    first = registry.register_candidate("shop", "Be brief.", params, "opt", window="w1")
    again = registry.register_candidate("shop", "Be brief.", params, "opt", window="w1")
    assert first == again == "3"
    assert [v["version"] for v in registry.registered_for_window("shop", "w1")] == ["3"]
    assert registry.versions("shop")[-1]["tags"][prompts.WINDOW_TAG] == "w1"
    assert registry.register_candidate("shop", "Be brief.", params, "opt", window="w2") == "4"  # a new window
    assert len(registry.versions("shop")) == 4


def test_candidate_losing_n_evaluations_in_a_row_is_retired(registry):
    registry.seed(spec())  # production 1, candidate alias on 3, candidates 2 and 3
    assert registry.record_results("shop", "w1", ["3"], ["2"], retire_after=3) == {}
    assert registry.record_results("shop", "w1", ["3"], ["2"], retire_after=3) == {}  # retry: counted once
    assert registry.record_results("shop", "w2", ["3"], [], retire_after=3) == {}
    assert registry.versions("shop")[2]["tags"][prompts.LOSSES_TAG] == "2"
    retired = registry.record_results("shop", "w3", ["3"], [], retire_after=3)
    assert set(retired) == {"3"} and "lost 3 scheduled evaluations in a row" in retired["3"]
    entry = registry.versions("shop")[2]
    assert entry["tags"][prompts.RETIRED_TAG] == retired["3"]
    assert "candidate" not in entry["aliases"]
    assert registry.candidates("shop") == ["2"]


def test_a_comparison_not_lost_ends_the_streak(registry):
    registry.seed(spec())
    registry.record_results("shop", "w1", ["2"], [], retire_after=2)
    registry.record_results("shop", "w2", [], ["2"], retire_after=2)  # beat production, another won
    assert registry.record_results("shop", "w3", ["2"], [], retire_after=2) == {}
    assert "2" in registry.candidates("shop")
