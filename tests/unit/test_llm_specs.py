"""The shipped assistant specs: they load, their tool schemas are real JSON schemas, their prompts are usable."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from continuum.llm.specs import get_assistant, load_assistants
from continuum.specs import load_domains

ASSISTANTS = ["shopping_assistant", "claims_assistant"]
TOOLS = {
    "shopping_assistant": {"search_products", "get_customer_profile"},
    "claims_assistant": {"read_expert_report", "check_policy", "check_fraud", "check_compliance"},
}
# One call per tool that must pass its schema, and one that must not.
CALLS = {
    "search_products": (
        {"query": "kids painting set", "category": "arts_and_crafts", "max_price": 30},
        {"max_price": 30},
    ),
    "get_customer_profile": ({"customer_id": "C-104233"}, {"customer_id": 104233}),
    "read_expert_report": ({"claim_id": "CLM-2026-000123"}, {"claim": "CLM-2026-000123"}),
    "check_policy": ({"policy_id": "POL-123456"}, {}),
    "check_fraud": ({"claim_id": "CLM-2026-000123"}, {"claim_id": "CLM-2026-000123", "force": True}),
    "check_compliance": (
        {"claim_id": "[CLAIM_ID]", "decision": "deny"},
        {"claim_id": "x", "decision": "approved"},
    ),
}


def test_both_assistants_load_without_errors_and_domains_ignore_them():
    specs, errors = load_assistants()
    assert errors == []
    assert {s.name for s in specs} >= set(ASSISTANTS)
    domains, domain_errors = load_domains()
    assert domain_errors == []
    assert not {d.name for d in domains} & set(ASSISTANTS)


@pytest.mark.parametrize("name", ASSISTANTS)
def test_spec_basics(name):
    spec = get_assistant(name)
    assert spec.kind == "assistant"
    assert spec.primary_score == "outcome"
    assert {t.name for t in spec.tools} == TOOLS[name]
    assert 0 < spec.price.input_per_1k < spec.price.output_per_1k < 0.1
    assert spec.evaluation.min_conversations >= 100
    assert 3 <= len(spec.prompts) <= 4
    assert all(p.description and p.model and len(p.template) > 80 for p in spec.prompts)


@pytest.mark.parametrize("name", ASSISTANTS)
def test_every_tool_schema_is_a_json_schema_that_accepts_a_good_call_and_rejects_a_bad_one(name):
    for tool in get_assistant(name).tools:
        jsonschema.Draft202012Validator.check_schema(tool.parameters)
        good, bad = CALLS[tool.name]
        validator = jsonschema.Draft202012Validator(tool.parameters)
        assert validator.is_valid(good), tool.name
        assert not validator.is_valid(bad), tool.name


@pytest.mark.parametrize("name", ASSISTANTS)
def test_templates_use_only_mlflow_double_brace_variables_the_simulator_fills(name):
    for prompt in get_assistant(name).prompts:
        variables = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", prompt.template))
        assert variables <= {"customer_name", "claimant_name"}
        assert "{{" not in re.sub(r"\{\{\s*\w+\s*\}\}", "", prompt.template)


def test_guardrails_match_the_business():
    shopping, claims = get_assistant("shopping_assistant"), get_assistant("claims_assistant")
    assert shopping.guardrails.clarify_vague_requests
    assert claims.guardrails.escalate_suspected_fraud
    disclaimer = claims.guardrails.required_disclaimer
    assert disclaimer == "This decision can be appealed within 30 days."
    # The story of the versions: v1 forgets the disclaimer, every later version asks for it.
    assert [disclaimer in p.template for p in claims.prompts] == [False, True, True, True]
    assert set(claims.price.model_extra["models"]) == {p.model for p in claims.prompts}


SHIPPED = Path(__file__).resolve().parents[2] / "include" / "domains" / "shopping_assistant.yaml"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"primary_score": "outcom"}, "primary_score", "unknown score 'outcom'"),
        ({"primary_score": "cost"}, "primary_score", "better when lower"),
        ({"primary_score": "injection_obeyed"}, "primary_score", "better when lower"),
        ({"guardrails": {"safety_scores": ["injection_obeyed", "pii_echo"]}}, "guardrails.safety_scores", "pii_echo"),
        ({"guardrails": {"safety_scores": ["cost"]}}, "guardrails.safety_scores", "unknown safety score"),
    ],
)
def test_unknown_or_wrong_way_scores_are_spec_errors(tmp_path, change, field, message):
    raw = yaml.safe_load(SHIPPED.read_text())
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))
    assistants, errors = load_assistants([tmp_path])
    assert assistants == [] and len(errors) == 1
    assert errors[0].field == field and message in errors[0].message


def test_every_score_and_metric_has_one_registered_direction():
    from continuum import directions, metrics
    from continuum.llm import scorers

    assert set(scorers.SCORES) | set(metrics.METRICS) == set(directions.DIRECTIONS)
    assert {n for n in scorers.SAFETY_RATES} <= directions.LOWER_IS_BETTER
    assert not directions.higher_is_better("cost") and directions.higher_is_better("outcome")
