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
        "shop", "Be brief.", {"model": "m", "temperature": 0.5, "top_p": 0.8}, "opt", tools=[]
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
    first = registry.register_candidate("shop", "Be brief.", params, "opt", window="w1", tools=[])
    again = registry.register_candidate("shop", "Be brief.", params, "opt", window="w1", tools=[])
    assert first == again == "3"
    assert [v["version"] for v in registry.registered_for_window("shop", "w1")] == ["3"]
    assert registry.versions("shop")[-1]["tags"][prompts.WINDOW_TAG] == "w1"
    assert registry.register_candidate("shop", "Be brief.", params, "opt", window="w2", tools=[]) == "4"  # a new window
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


# -- the tool schemas a version was written for ------------------------------------------------

SEARCH = {
    "name": "search_products",
    "description": "Search the catalogue",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
PROFILE = {"name": "get_customer_profile"}


def tooled(*tools: dict, count: int = 2):
    return spec(count=count).model_copy(update={"tools": probe_assistant.spec(tools=list(tools)).tools})


def by_name(tools) -> dict:
    return {t.name: t for t in tools}


def test_every_registered_version_records_the_hash_of_its_tool_schemas(registry, s3):
    from continuum.llm import tool_schemas

    old = tooled(SEARCH, PROFILE)
    registry.seed(old)
    sha = tool_schemas.digest(old.tools)
    assert [v["tags"][tool_schemas.TOOLS_TAG] for v in registry.versions("shop")] == [sha, sha]
    assert by_name(tool_schemas.load("shop", sha)) == by_name(old.tools)  # the schemas themselves, from S3
    assert s3.exists(s3.LlmKeys("shop").tool_schemas(sha))

    new = tooled({**SEARCH, "parameters": {**SEARCH["parameters"], "required": ["query", "max_price"]}}, PROFILE)
    params = {"model": "m", "temperature": 0.5, "top_p": 0.8}
    version = registry.register_candidate("shop", "Be brief.", params, "opt", window="w1", tools=new.tools)
    new_sha = registry.versions("shop")[-1]["tags"][tool_schemas.TOOLS_TAG]
    assert new_sha == tool_schemas.digest(new.tools) != sha
    assert by_name(tool_schemas.load("shop", new_sha)) == by_name(new.tools)
    # the same proposal for the window, written for other tools, is another version
    assert registry.register_candidate("shop", "Be brief.", params, "opt", window="w1", tools=new.tools) == version
    assert registry.register_candidate("shop", "Be brief.", params, "opt", window="w1", tools=old.tools) != version


def test_the_hash_is_canonical():
    from continuum.llm import tool_schemas

    reordered = {"parameters": {"required": ["query"], "type": "object", "properties": {"query": {"type": "string"}}},
                 "description": "Search the catalogue", "name": "search_products"}
    assert tool_schemas.digest(tooled(SEARCH, PROFILE).tools) == tool_schemas.digest(tooled(PROFILE, reordered).tools)
    assert tool_schemas.digest(tooled(SEARCH).tools) != tool_schemas.digest(tooled(SEARCH, PROFILE).tools)
    assert len(tool_schemas.digest([])) == 64


def test_what_is_read_back_is_checked_and_an_error_is_not_an_absence(registry, s3, monkeypatch):
    from botocore.exceptions import ClientError

    from continuum.llm import tool_schemas

    old = tooled(SEARCH)
    registry.seed(old)
    sha = tool_schemas.digest(old.tools)
    changed = tooled(PROFILE)  # the spec moved on: version 1's schemas must now be read back
    key = s3.LlmKeys("shop").tool_schemas(sha)
    for bad in ("../../etc/passwd", "ABC", None):
        with pytest.raises(tool_schemas.ToolSchemasError, match="not a sha256 hex digest"):
            tool_schemas.load("shop", bad)
    s3.put_bytes(key, b'[{"name": "search_products", "parameters": {"type": "nonsense"}}]')
    with pytest.raises(tool_schemas.ToolSchemasError, match="does not hash to"):
        tool_schemas.registered(changed)
    s3.delete(key)
    with pytest.raises(tool_schemas.ToolSchemasError, match="no tool schemas at"):
        tool_schemas.registered(changed)  # a recorded hash whose schemas are gone is not "no hash"
    tool_schemas.store("shop", old.tools)
    assert tool_schemas.registered(changed)["1"].validated_against == "version"

    def outage(*args, **kwargs):
        raise ClientError({"Error": {"Code": "503", "Message": "Slow Down"}}, "HeadObject")

    with monkeypatch.context() as patched:
        patched.setattr(s3.client(), "head_object", outage)
        with pytest.raises(ClientError):
            tool_schemas.registered(changed)
    with monkeypatch.context() as patched:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

        _failing_registry(patched, MlflowException("server busy", error_code=TEMPORARILY_UNAVAILABLE))
        with pytest.raises(MlflowException):
            tool_schemas.registered(changed)


def test_stored_schemas_that_hash_right_but_are_not_tools_are_refused(s3):
    import hashlib

    from continuum.llm import tool_schemas

    forged = b'[{"name": "search_products", "parameters": {"type": 12}}]'
    sha = hashlib.sha256(forged).hexdigest()
    s3.put_bytes(s3.LlmKeys("shop").tool_schemas(sha), forged)
    with pytest.raises(tool_schemas.ToolSchemasError, match="holds no valid tools"):
        tool_schemas.load("shop", sha)
