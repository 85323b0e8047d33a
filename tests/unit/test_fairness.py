"""Fairness per protected column: known values on a small biased frame, the gate naming the group,
and a challenger trained on biased labels refused by the shipped claim-risk gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
)

from continuum import blessing, fairness, simulate, training
from continuum.specs import DomainSpec, get_domain


def _spec(fairness_gates=(), kind: str = "probability", **scoring) -> DomainSpec:
    return DomainSpec.model_validate(
        {
            "name": "fair_test",
            "description": "test",
            "owner": "tests",
            "data": {
                "target": "label",
                "columns": [
                    {"name": "x", "type": "float"},
                    {"name": "group", "type": "category", "protected": True},
                    {"name": "label", "type": "int", "allowed": [0, 1]},
                ],
            },
            "monitoring": {"primary_metric": "accuracy", "floor": 0.5},
            "blessing": {"fairness": list(fairness_gates)},
            "scoring": {"kind": kind, **scoring},
        }
    )


# Group a: 4 positives of 10, selected 1,1,1,0 | 1,0,0,0,0,0 -> selection 0.4, TPR 3/4, FPR 1/6, accuracy 0.8.
# Group b: 4 positives of 10, selected 1,0,0,0 | 0,0,0,0,0,0 -> selection 0.1, TPR 1/4, FPR 0,   accuracy 0.7.
LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
SELECTED_A = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
SELECTED_B = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def _biased(extra_group: list[tuple[int, int]] = ()) -> tuple[pd.DataFrame, np.ndarray]:
    labels = LABELS + LABELS + [y for y, _ in extra_group]
    selected = SELECTED_A + SELECTED_B + [s for _, s in extra_group]
    groups = ["a"] * 10 + ["b"] * 10 + ["c"] * len(extra_group)
    frame = pd.DataFrame({"x": 0.0, "group": groups, "label": labels})
    return frame, np.where(np.asarray(selected) == 1, 0.9, 0.1)


def test_per_group_rates_and_between_group_measures_on_a_known_bias():
    spec = _spec()
    frame, scores = _biased()
    part = fairness.report(spec, frame, scores)["columns"]["group"]
    a, b = part["groups"]["a"], part["groups"]["b"]
    assert a == pytest.approx(
        {"rows": 10, "selection_rate": 0.4, "true_positive_rate": 0.75, "false_positive_rate": 1 / 6,
         "positive_rate": 0.4, "mean_score": 0.42, "accuracy": 0.8}
    )
    assert b == pytest.approx(
        {"rows": 10, "selection_rate": 0.1, "true_positive_rate": 0.25, "false_positive_rate": 0.0,
         "positive_rate": 0.4, "mean_score": 0.18, "accuracy": 0.7}
    )
    m = part["measures"]
    assert m["demographic_parity_ratio"] == pytest.approx(0.25)
    assert m["demographic_parity_difference"] == pytest.approx(0.3)
    assert m["equal_opportunity_ratio"] == pytest.approx(1 / 3)
    assert m["equal_opportunity_difference"] == pytest.approx(0.5)
    assert m["equalized_odds_ratio"] == pytest.approx(0.0)  # the worse of TPR (1/3) and FPR (0) ratios
    assert m["equalized_odds_difference"] == pytest.approx(0.5)
    assert m["primary_metric_ratio"] == pytest.approx(0.875)
    assert m["primary_metric_difference"] == pytest.approx(0.1)
    assert "mean_risk_factor_ratio" not in m  # not a premium domain

    # The same numbers as fairlearn's own functions on the hard decisions.
    y, selected, groups = frame["label"], (scores >= 0.5).astype(int), frame["group"]
    assert m["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(y, selected, sensitive_features=groups))
    assert m["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y, selected, sensitive_features=groups))
    assert m["equalized_odds_ratio"] == pytest.approx(equalized_odds_ratio(y, selected, sensitive_features=groups))
    assert m["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, selected, sensitive_features=groups))


def test_a_rate_a_group_cannot_have_is_null_not_zero():
    spec = _spec()
    frame, scores = _biased(extra_group=[(0, 0)] * 12)  # group c: no positives, so no TPR
    groups = fairness.report(spec, frame, scores)["columns"]["group"]["groups"]
    assert groups["c"]["true_positive_rate"] is None and groups["c"]["false_positive_rate"] == 0.0
    # c does not drag the TPR ratio to 0; it still counts for selection (0 of 12 selected).
    measures = fairness.report(spec, frame, scores)["columns"]["group"]["measures"]
    assert measures["equal_opportunity_ratio"] == pytest.approx(1 / 3)
    assert measures["demographic_parity_ratio"] == 0.0


def test_the_gate_refuses_naming_the_column_the_groups_and_by_how_much():
    spec = _spec([{"metric": "demographic_parity_ratio", "min": 0.8, "min_group_rows": 5}])
    frame, scores = _biased(extra_group=[(1, 0), (0, 0)])  # group c: 2 rows, too few to judge
    report = fairness.report(spec, frame, scores)
    [result] = fairness.judge(spec, report)
    assert result["passed"] is False and result["groups"] == ["a", "b"]
    assert result["reason"] == (
        "fairness demographic_parity_ratio on group 0.25 below min 0.8 by 0.55: "
        "selection_rate 0.1 for group=b vs 0.4 for group=a"
    )
    ok, why_not = blessing.bless(spec, {"accuracy": 0.75}, None, fairness=report)
    assert not ok and why_not == [result["reason"]]

    lenient = _spec([{"metric": "demographic_parity_ratio", "min": 0.2, "min_group_rows": 5}])
    assert blessing.bless(lenient, {"accuracy": 0.75}, None, fairness=report) == (True, [])
    # Judged with every group, the 2-row group c (selection 0) would make the ratio 0.
    everyone = _spec([{"metric": "demographic_parity_ratio", "min": 0.2, "min_group_rows": 1}])
    assert fairness.judge(everyone, report)[0]["value"] == 0.0


def test_a_difference_gate_and_a_gate_with_too_few_groups():
    spec = _spec(
        [
            {"metric": "equalized_odds_difference", "max": 0.3, "min_group_rows": 10},
            {"metric": "primary_metric_ratio", "min": 0.9},  # default min_group_rows 30: groups of 10 are not judged
        ]
    )
    frame, scores = _biased()
    odds, primary = fairness.judge(spec, fairness.report(spec, frame, scores))
    assert odds["reason"] == (
        "fairness equalized_odds_difference on group 0.5 above max 0.3 by 0.2: "
        "true_positive_rate 0.25 for group=b vs 0.75 for group=a"
    )
    assert primary["passed"] is True and primary["value"] is None and "not judged" in primary["note"]


def test_premium_selection_is_a_surcharge_and_the_mean_risk_factor_is_compared():
    spec = _spec([{"metric": "mean_risk_factor_ratio", "min": 0.8, "min_group_rows": 10}], kind="premium", base_premium=100.0)
    frame, scores = _biased()
    risk = np.where(frame["group"] == "a", 2.0, 0.8)
    risk[0] = 0.9  # one policy of group a pays less than the base premium
    report = fairness.report(spec, frame, scores, risk)
    assert report["selected"] == "a surcharge: risk factor above 1"
    groups = report["columns"]["group"]["groups"]
    assert groups["a"]["selection_rate"] == pytest.approx(0.9) and groups["b"]["selection_rate"] == 0.0
    assert groups["a"]["mean_risk_factor"] == pytest.approx(1.89) and groups["b"]["mean_risk_factor"] == pytest.approx(0.8)
    [result] = fairness.judge(spec, report)
    assert result["value"] == pytest.approx(0.8 / 1.89) and "mean_risk_factor 0.8 for group=b" in result["reason"]


def test_a_challenger_trained_on_biased_labels_is_refused_by_the_shipped_claims_gate():
    """Historic claims of drivers under 25 recorded as claims whatever happened: the model learns
    it through driver_age (the band itself never reaches it) and serves that band far worse."""
    base = get_domain("insurance_claim_risk")
    spec = base.model_copy(update={"model": base.model.model_copy(update={"params": {"max_iter": 60, "random_state": 0}})})
    frame = simulate.generate(spec.name, 3000, seed=101)
    train, holdout = training.split(frame, spec, seed=0)
    assert (holdout["driver_age_band"] == "18-24").sum() >= 30  # big enough to be judged
    fair = training.fit(spec, train)
    biased = training.fit(spec, train.assign(has_claim=train["has_claim"].where(train["driver_age"] >= 25, 1)))

    fair_ok, fair_why = blessing.bless(spec, **blessing.compare_on_holdout(spec, fair, None, holdout))
    assert fair_ok, fair_why
    comparison = blessing.compare_on_holdout(spec, biased, None, holdout)
    assert comparison["challenger"]["accuracy"] >= spec.bless_floor  # its average clears the floor
    ok, why_not = blessing.bless(spec, **comparison)
    assert not ok
    [reason] = [r for r in why_not if r.startswith("fairness")]
    assert reason.startswith("fairness primary_metric_ratio on driver_age_band ")
    assert "below min 0.6 by" in reason and "for driver_age_band=18-24 vs" in reason
