"""Reason codes: prediction difference against the training sample's typical values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from continuum import reasons, scoring, simulate, training
from continuum.specs import DomainSpec, get_domain


def _spec() -> DomainSpec:
    return DomainSpec.model_validate(
        {
            "name": "reasons_test",
            "description": "test",
            "owner": "tests",
            "data": {
                "target": "label",
                "columns": [
                    {"name": "amount", "type": "float"},
                    {"name": "colour", "type": "category", "allowed": ["red", "blue"]},
                    {"name": "member", "type": "bool"},
                    {"name": "label", "type": "int", "allowed": [0, 1]},
                ],
            },
        }
    )


def _linear(x: pd.DataFrame) -> np.ndarray:
    """A score whose contributions are known: +0.01 per unit of amount, +0.2 when red, -0.05 for members."""
    return 0.3 + 0.01 * x["amount"].to_numpy() + 0.2 * (x["colour"].astype(str) == "red") - 0.05 * x["member"]


def test_typical_values_are_the_reference_median_and_mode():
    reference = pd.DataFrame(
        {"amount": [1.0, 2.0, 10.0, None], "colour": ["blue", "red", "blue", None], "member": [True, True, False, True], "label": 0}
    )
    assert reasons.typical_values(_spec(), reference) == {"amount": 2.0, "colour": "blue", "member": True}


def test_reason_codes_name_the_feature_its_value_and_the_direction():
    typical = {"amount": 10.0, "colour": "blue", "member": True}
    rows = pd.DataFrame({"amount": [25.0, 10.0], "colour": ["red", "blue"], "member": [False, True]})
    contribution = reasons.contributions(rows, _linear, typical)
    np.testing.assert_allclose(contribution, [[0.15, 0.2, 0.05], [0.0, 0.0, 0.0]], atol=1e-12)
    codes = reasons.reason_codes(rows, contribution, 3)
    assert codes.iloc[0].tolist() == ["colour=red (+0.200)", "amount=25 (+0.150)", "member=false (+0.050)"]
    assert codes.iloc[1].tolist() == [None, None, None]  # a typical row: nothing moved its score


def test_negative_contributions_rank_by_size_and_keep_their_sign():
    typical = {"amount": 10.0, "colour": "red", "member": False}
    rows = pd.DataFrame({"amount": [12.0], "colour": ["blue"], "member": [True]})
    codes = reasons.reason_codes(rows, reasons.contributions(rows, _linear, typical), 2)
    assert codes.iloc[0].tolist() == ["colour=blue (-0.200)", "member=true (-0.050)"]


def test_missing_values_and_large_numbers_read_as_a_person_writes_them():
    assert reasons._render(None) == "missing" and reasons._render(float("nan")) == "missing"
    assert reasons._render(24240.4) == "24240" and reasons._render(1.23456) == "1.235"
    assert reasons._render(True) == "true"


@pytest.fixture(scope="module")
def claims():
    spec = get_domain("insurance_claim_risk")
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"params": {"max_iter": 30}})})
    train = simulate.generate(spec.name, n=1500, seed=3)
    return spec, training.fit(spec, train), train


def test_premium_scores_carry_three_reason_codes_from_the_model_inputs_only(claims):
    spec, model, train = claims
    batch = simulate.generate(spec.name, n=300, seed=4, faults=["unlabelled"])
    scores = scoring.score(spec, model, batch, reference=train)
    assert list(scores.columns[-3:]) == ["reason_1", "reason_2", "reason_3"]
    named = {code.split("=")[0] for code in scores[["reason_1", "reason_2", "reason_3"]].stack()}
    inputs = {c.name for c in spec.data.feature_columns}
    assert named and named <= inputs
    assert not named & {"driver_age_band", "policy_id", "has_claim"}  # protected, id, label


def test_a_reason_is_the_score_change_when_that_feature_alone_is_typical(claims):
    spec, model, train = claims
    batch = simulate.generate(spec.name, n=50, seed=5)
    codes = scoring.reason_columns(spec, model, batch, train)
    typical = reasons.typical_values(spec, train)
    row = batch.iloc[[0]]
    feature = codes.iloc[0]["reason_1"].split("=")[0]
    replaced = row.assign(**{feature: typical[feature]})
    p = model.predict_proba(training.features(spec, row))[0, 1]
    q = model.predict_proba(training.features(spec, replaced))[0, 1]
    assert codes.iloc[0]["reason_1"].endswith(f"({p - q:+.3f})")


def test_reason_codes_need_the_champions_training_sample(claims):
    spec, model, _ = claims
    with pytest.raises(ValueError, match="reference.parquet"):
        scoring.score(spec, model, simulate.generate(spec.name, n=10, seed=6))


def test_reason_codes_follow_the_scoring_kind_and_the_spec_key():
    spec = get_domain("insurance_fraud")
    assert spec.scoring.reasons == 3
    assert get_domain("retail_recommender").scoring.reasons == 0
    raw = spec.model_dump(exclude={"source"})
    raw["scoring"] = {**raw["scoring"], "reason_codes": 5}
    assert DomainSpec.model_validate(raw).scoring.reasons == 5
    retail = get_domain("retail_recommender").model_dump(exclude={"source"})
    retail["scoring"] = {**retail["scoring"], "reason_codes": 3}
    with pytest.raises(ValueError, match="recommendations rank items"):
        DomainSpec.model_validate(retail)
