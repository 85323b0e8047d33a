"""Prompt registry rules against a real (SQLite) MLflow store."""

from __future__ import annotations

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
    return AssistantSpec.model_validate(
        {
            "name": name,
            "description": "d",
            "owner": "o",
            "business": "retail",
            "primary_score": "outcome",
            "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
            "prompts": versions,
        }
    )


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
