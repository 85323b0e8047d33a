"""The shipped `retail_recommender` and `insurance_fraud` domains: specs, simulators, gate, models, drift.

Each domain's story must hold on its own simulated data: stable batches pass the
validation gate and every generic fault fails it; a model trained on a stable
batch clears the floor (and, for retail, beats the shop's rules); concept drift
pushes that model below the floor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from continuum import baselines, blessing, metrics, scoring, simulate, training
from continuum.simulate import faults
from continuum.simulate import retail_recommender as retail_sim
from continuum.specs import get_domain

RETAIL, FRAUD = "retail_recommender", "insurance_fraud"


def quick(spec, **params):
    """The spec with fewer boosting rounds, so a test trains in a fraction of a second."""
    merged = {**spec.model.params, **params}
    return spec.model_copy(update={"model": spec.model.model_copy(update={"params": merged})})


@pytest.fixture(scope="module")
def retail():
    return get_domain(RETAIL)


@pytest.fixture(scope="module")
def fraud():
    return get_domain(FRAUD)


# --- specs ---------------------------------------------------------------------------------------


def test_retail_spec_declares_rules_baseline_and_top_5_recommendations(retail):
    assert retail.monitoring.primary_metric == "roc_auc" and retail.monitoring.floor == 0.70
    assert retail.scoring.kind == "recommendations"
    assert retail.scoring.model_extra == {"k": 5, "user_column": "user_id", "item_column": "item_id"}
    assert retail.baseline.estimator == "continuum.baselines.CategoryPopularityBaseline"
    assert set(retail.baseline.params) == {
        "popularity_column",
        "category_column",
        "preferred_column",
        "boost",
    }
    assert retail.blessing.segment_column == "device"
    item_categories = retail.data.column("item_category").allowed
    assert retail.data.column("user_preferred_category").allowed == item_categories


def test_fraud_spec_judges_recall_at_half_precision_and_flags_claims(fraud):
    assert fraud.monitoring.primary_metric == "recall_at_precision"
    assert fraud.monitoring.metric_params == {"precision": 0.5}
    assert fraud.scoring.kind == "fraud" and 0 < fraud.scoring.model_extra["threshold"] < 1
    assert fraud.blessing.segment_column == "claim_type"
    assert fraud.baseline is None


# --- simulators ----------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", [RETAIL, FRAUD])
def test_simulator_is_deterministic_and_matches_the_contract_exactly(domain):
    spec = get_domain(domain)
    frame = simulate.generate(domain, 3000, seed=7)
    pd.testing.assert_frame_equal(frame, simulate.generate(domain, 3000, seed=7))
    assert not frame.equals(simulate.generate(domain, 3000, seed=8))
    assert list(frame.columns) == [c.name for c in spec.data.columns]
    assert frame[spec.data.id_column].is_unique
    for column in spec.data.columns:
        values = frame[column.name]
        assert values.notna().all(), column.name
        if column.min is not None:
            assert values.min() >= column.min, column.name
        if column.max is not None:
            assert values.max() <= column.max, column.name
        if column.allowed is not None:
            assert set(values.unique()) <= set(column.allowed), column.name
        if column.type == "int":
            assert pd.api.types.is_integer_dtype(values), column.name
        elif column.type == "float":
            assert pd.api.types.is_float_dtype(values), column.name
        elif column.type == "bool":
            assert values.dtype == bool, column.name


def test_retail_purchase_rate_and_a_fixed_shop():
    a = simulate.generate(RETAIL, 4000, seed=1)
    b = simulate.generate(RETAIL, 4000, seed=2)
    assert 0.05 <= a["purchased"].mean() <= 0.10
    # The same user and item mean the same thing in every batch.
    for key, attributes in (
        ("user_id", ["user_preferred_category", "user_price_sensitivity"]),
        ("item_id", ["item_category", "item_price"]),
    ):
        both = pd.concat([a, b])[[key, *attributes]].drop_duplicates()
        assert both[key].is_unique, key
    # Users see many items each: enough to rank a top 5 for most of them.
    assert a.groupby("user_id").size().median() >= 5
    assert a["item_id"].nunique() == retail_sim.N_ITEMS


def test_fraud_is_rare():
    frame = simulate.generate(FRAUD, 20000, seed=1)
    assert 0.015 <= frame["is_fraud"].mean() <= 0.035


@pytest.mark.parametrize("domain", [RETAIL, FRAUD])
def test_generic_faults_land_in_the_new_domains(domain):
    stable = simulate.generate(domain, 1000, seed=5)
    for fault in faults.INJECTORS:
        broken = simulate.generate(domain, 1000, seed=5, faults=[fault])
        assert not broken.equals(stable), fault


# --- the validation gate -------------------------------------------------------------------------


@pytest.mark.parametrize("domain", [RETAIL, FRAUD])
@pytest.mark.parametrize("fault", [None, *faults.INJECTORS])
def test_gate_passes_stable_batches_and_fails_every_generic_fault(domain, fault):
    from continuum.validation import validate

    frame = simulate.generate(domain, 500, seed=3, faults=[fault] if fault else [])
    result = validate(get_domain(domain), frame)
    valid = fault in (None, "unlabelled")  # an unlabelled batch is production data to score, not a fault
    assert result.success is valid, result.reason


# --- retail: the model beats the rules, concept drift breaks it ----------------------------------


@pytest.fixture(scope="module")
def retail_models(retail):
    spec = quick(retail, max_iter=80, learning_rate=0.1)
    train, holdout = training.split(simulate.generate(RETAIL, 6000, seed=1), spec, seed=0)
    return spec, training.fit(spec, train), baselines.fit_baseline(spec, train), holdout


def test_gradient_boosting_clearly_beats_the_category_popularity_rules(retail_models):
    spec, model, rules, holdout = retail_models
    learned = metrics.evaluate(spec, model, holdout)
    baseline = metrics.evaluate(spec, rules, holdout)
    assert baseline["roc_auc"] > 0.6  # the rules are decent...
    assert learned["roc_auc"] >= spec.monitoring.floor  # ...the model clears the floor...
    assert learned["roc_auc"] > baseline["roc_auc"] + 0.05  # ...and beats them clearly


def test_gradient_boosting_recommends_better_top_5s_than_the_rules(retail_models):
    spec, model, rules, _ = retail_models
    # A full day's batch: ~17 candidates per user, so a top 5 is a real choice (the holdout has ~4).
    day = simulate.generate(RETAIL, 8000, seed=22)
    learned, baseline = metrics.evaluate(spec, model, day), metrics.evaluate(spec, rules, day)
    assert baseline["precision_at_k"] > day["purchased"].mean()  # the rules beat showing anything
    assert learned["precision_at_k"] > baseline["precision_at_k"] + 0.03  # the model beats the rules
    assert 0.5 < learned["coverage"] <= 1 and 0.5 < baseline["coverage"] <= 1


def test_retail_model_is_blessed_on_stable_data_against_the_rules(retail_models):
    spec, model, rules, holdout = retail_models
    verdict, reasons = blessing.bless(spec, **blessing.compare_on_holdout(spec, model, rules, holdout))
    assert verdict, reasons


def test_retail_covariate_drift_moves_context_not_the_purchase_model(retail_models):
    spec, model, _, _ = retail_models
    fresh = simulate.generate(RETAIL, 4000, seed=21)
    drifted = simulate.generate(RETAIL, 4000, seed=21, faults=["covariate_drift"])
    assert (drifted["device"] == "mobile").mean() > (fresh["device"] == "mobile").mean() + 0.15
    assert drifted["hour_of_day"].mean() > fresh["hour_of_day"].mean() + 1.5
    assert drifted["item_popularity"].median() > 1.5 * fresh["item_popularity"].median()
    assert metrics.evaluate(spec, model, drifted)["roc_auc"] >= spec.monitoring.floor


def test_retail_concept_drift_pushes_the_champion_below_the_floor(retail_models):
    spec, model, _, _ = retail_models
    fresh = simulate.generate(RETAIL, 4000, seed=21)
    changed = simulate.generate(RETAIL, 4000, seed=21, faults=["concept_drift"])
    for column in ("item_price", "user_price_sensitivity", "item_popularity", "hour_of_day"):
        assert changed[column].mean() == pytest.approx(fresh[column].mean(), rel=0.01), column
    assert metrics.evaluate(spec, model, fresh)["roc_auc"] >= spec.monitoring.floor
    assert metrics.evaluate(spec, model, changed)["roc_auc"] < spec.monitoring.floor


def test_retail_scoring_writes_the_top_5_per_user(retail_models):
    spec, model, _, holdout = retail_models
    recommendations = scoring.score(spec, model, holdout.drop(columns=["purchased"]))
    assert list(recommendations.columns) == ["user", "rank", "item", "score"]
    assert recommendations.groupby("user").size().max() == 5
    assert set(recommendations["user"]) == set(holdout["user_id"])


# --- fraud: the model clears recall at precision 0.5, concept drift breaks it ---------------------


@pytest.fixture(scope="module")
def fraud_model(fraud):
    spec = quick(fraud, max_iter=80, learning_rate=0.1)
    return spec, training.fit(spec, simulate.generate(FRAUD, 15000, seed=1))


def test_fraud_model_clears_its_floor_on_stable_data(fraud_model):
    spec, model = fraud_model
    fresh = simulate.generate(FRAUD, 8000, seed=21)
    assert metrics.evaluate(spec, model, fresh)["recall_at_precision"] >= spec.monitoring.floor


def test_fraud_model_is_blessed_on_stable_data_segments_included(fraud_model):
    spec, model = fraud_model
    comparison = blessing.compare_on_holdout(spec, model, None, simulate.generate(FRAUD, 8000, seed=21))
    judged = [s for s, rows in comparison["segment_rows"].items() if rows >= spec.blessing.min_segment_rows]
    assert {"collision", "glass"} <= set(judged)
    verdict, reasons = blessing.bless(spec, **comparison)
    assert verdict, reasons


def test_fraud_concept_drift_pushes_the_model_below_its_floor(fraud_model):
    spec, model = fraud_model
    fresh = simulate.generate(FRAUD, 8000, seed=21)
    changed = simulate.generate(FRAUD, 8000, seed=21, faults=["concept_drift"])
    for column in ("claim_amount", "report_delay_days", "policy_tenure_months"):
        assert changed[column].mean() == pytest.approx(fresh[column].mean(), rel=0.01), column
    assert 0.015 <= changed["is_fraud"].mean() <= 0.05  # still rare: the fraud moved, it did not explode
    assert metrics.evaluate(spec, model, changed)["recall_at_precision"] < spec.monitoring.floor


def test_fraud_covariate_drift_moves_the_claims(fraud_model):
    spec, model = fraud_model
    fresh = simulate.generate(FRAUD, 8000, seed=21)
    drifted = simulate.generate(FRAUD, 8000, seed=21, faults=["covariate_drift"])
    assert (drifted["claim_type"] == "theft").mean() > (fresh["claim_type"] == "theft").mean() + 0.1
    assert drifted["claim_amount"].mean() > 1.15 * fresh["claim_amount"].mean()
    assert drifted["report_delay_days"].mean() > 1.5 * fresh["report_delay_days"].mean()


def test_fraud_scoring_flags_claims_above_the_threshold(fraud_model):
    spec, model = fraud_model
    batch = simulate.generate(FRAUD, 2000, seed=22, faults=["unlabelled"])
    scores = scoring.score(spec, model, batch, reference=simulate.generate(FRAUD, 2000, seed=1))
    threshold = spec.scoring.model_extra["threshold"]
    assert list(scores.columns) == ["claim_id", "fraud_score", "flag", "reason_1", "reason_2", "reason_3"]
    np.testing.assert_array_equal(scores["flag"], scores["fraud_score"] >= threshold)
    assert 0 < scores["flag"].mean() < 0.05  # a handful of claims go to the investigators


# --- drift detection -----------------------------------------------------------------------------


@pytest.mark.parametrize("domain", [RETAIL, FRAUD])
def test_covariate_drift_is_detected_and_stable_or_concept_drifted_batches_are_not(domain):
    from continuum.monitoring import detect_drift

    spec = get_domain(domain)
    reference = simulate.generate(domain, 3000, seed=1)
    verdict = {
        fault: detect_drift(spec, reference, simulate.generate(domain, 3000, seed=2, faults=faults))[0]
        for fault, faults in (
            ("none", []),
            ("covariate", ["covariate_drift"]),
            ("concept", ["concept_drift"]),
        )
    }
    assert verdict["covariate"].detected, verdict["covariate"].columns
    assert not verdict["none"].detected and not verdict["concept"].detected  # concept drift needs labels
