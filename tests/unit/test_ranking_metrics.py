"""Ranking metrics against hand-computed values, and evaluate's extra keys for recommendation domains."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from continuum import metrics
from continuum.specs import get_domain


def impressions() -> pd.DataFrame:
    """u1: 4 impressions (2 bought), u2: 2 impressions (1 bought), u3: 1 impression (none bought)."""
    return pd.DataFrame(
        {
            "user": ["u1", "u1", "u1", "u1", "u2", "u2", "u3"],
            "item": ["a", "b", "c", "d", "a", "e", "b"],
            "bought": [1, 0, 1, 0, 0, 1, 0],
            "score": [0.9, 0.8, 0.3, 0.1, 0.7, 0.2, 0.5],
        }
    )


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        # u1 top1 = a (bought) -> 1; u2 top1 = a (not) -> 0; u3 -> 0.     mean = 1/3
        (1, 1 / 3),
        # u1 top2 = a, b -> 1/2; u2 = a, e -> 1/2; u3 has only b -> 0.    mean = 1/3
        (2, 1 / 3),
        # u1 top3 = a, b, c -> 2/3; u2 (2 rows) -> 1/2; u3 -> 0.          mean = 7/18
        (3, 7 / 18),
        # k beyond every user's impressions: each user's own share.      mean = (1/2 + 1/2 + 0) / 3
        (10, 1 / 3),
    ],
)
def test_precision_at_k_by_hand(k, expected):
    assert metrics.precision_at_k(impressions(), "user", "bought", "score", k) == pytest.approx(expected)


def test_precision_at_k_breaks_ties_by_item_when_told():
    frame = pd.DataFrame({"user": ["u", "u"], "item": ["z", "a"], "bought": [0, 1], "score": [0.5, 0.5]})
    assert metrics.precision_at_k(frame, "user", "bought", "score", 1) == 0.0  # row order
    assert metrics.precision_at_k(frame, "user", "bought", "score", 1, item_column="item") == 1.0


def test_precision_at_k_honours_the_positive_label_and_refuses_bad_input():
    frame = impressions().assign(bought=impressions()["bought"].map({1: "yes", 0: "no"}))
    assert metrics.precision_at_k(frame, "user", "bought", "score", 1, positive_label="yes") == pytest.approx(
        1 / 3
    )
    assert math.isnan(metrics.precision_at_k(frame.head(0), "user", "bought", "score", 1))
    with pytest.raises(ValueError, match="k must be at least 1"):
        metrics.precision_at_k(frame, "user", "bought", "score", 0)
    with pytest.raises(ValueError, match=r"no column\(s\) \['points'\]"):
        metrics.precision_at_k(frame, "user", "bought", "points", 1)


def test_catalogue_coverage_by_hand():
    recommendations = pd.DataFrame({"user": ["u1", "u1", "u2", "u2"], "item": ["a", "b", "a", "c"]})
    assert metrics.catalogue_coverage(recommendations, "item", 10) == pytest.approx(0.3)
    # A catalogue smaller than what was shown (a stale catalogue_size) still caps at 1.
    assert metrics.catalogue_coverage(recommendations, "item", 2) == 1.0
    with pytest.raises(ValueError, match="catalogue_size must be at least 1"):
        metrics.catalogue_coverage(recommendations, "item", 0)
    with pytest.raises(ValueError, match="no column 'sku'"):
        metrics.catalogue_coverage(recommendations, "sku", 5)


class FixedScores:
    """A model whose positive-class probability is the frame's `score` column."""

    classes_ = [0, 1]

    def predict_proba(self, frame):
        import numpy as np

        s = frame["score"].to_numpy()
        return np.column_stack([1 - s, s])


def recommendation_spec(**scoring):
    spec = get_domain("retail_recommender")
    extra = {"k": 2, "user_column": "user", "item_column": "item", **scoring}
    target = spec.data.model_copy(update={"target": "bought"}, deep=True)
    return spec.model_copy(
        update={"scoring": spec.scoring.model_validate({"kind": "recommendations", **extra}), "data": target}
    )


def test_evaluate_adds_ranking_metrics_for_a_recommendations_spec():
    result = metrics.evaluate(recommendation_spec(), FixedScores(), impressions())
    assert list(result)[:3] == ["roc_auc", "accuracy", "brier"]
    assert result["precision_at_k"] == pytest.approx(1 / 3)
    # top 2: u1 -> a, b; u2 -> a, e; u3 -> b. Distinct {a, b, e} of the 5 items in the frame.
    assert result["coverage"] == pytest.approx(3 / 5)
    assert metrics.evaluate(recommendation_spec(catalogue_size=30), FixedScores(), impressions())[
        "coverage"
    ] == pytest.approx(3 / 30)


def test_evaluate_leaves_other_specs_and_frames_without_users_alone():
    assert "precision_at_k" not in metrics.evaluate(
        recommendation_spec(), FixedScores(), impressions().drop(columns="user")
    )
    claims = get_domain("insurance_claim_risk")
    frame = pd.DataFrame({"has_claim": [0, 1, 0, 1], "score": [0.1, 0.9, 0.4, 0.6]})
    assert set(metrics.evaluate(claims, FixedScores(), frame)) == {"accuracy", "roc_auc", "brier"}
