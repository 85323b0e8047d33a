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


# --- Evidently's recommender metrics on the holdout (continuum.ranking) -----------------------

@pytest.fixture(scope="module")
def ranked():
    """The impressions above as a holdout of retail_recommender, and a training window of purchases."""
    frame = impressions().rename(columns={"user": "user_id", "item": "item_id", "bought": "purchased"})
    train = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u4"], "item_id": ["a", "a", "b", "c"], "purchased": [1, 1, 1, 0]})
    return get_domain("retail_recommender"), frame.drop(columns="score"), frame["score"].to_numpy(), train


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        # u3 bought nothing and is left out. u1 ranks a(1) b(0) c(1) d(0); u2 ranks a(0) e(1).
        # NDCG@1: u1 1, u2 0. NDCG@2: u1 1/1 = 1 (ideal 1 + 1/log2 3 -> dcg 1 / 1.631), u2 (1/log2 3) / 1.
        (1, {"ndcg_at_1": 0.5, "hit_rate_at_1": 0.5, "map_at_1": 0.5}),
        (2, {"ndcg_at_2": (1 / (1 + 1 / math.log2(3)) + 1 / math.log2(3)) / 2, "hit_rate_at_2": 1.0,
             "map_at_2": (1 / 2 + (1 / 2) / 1) / 2}),
        # MAP@4: u1 (1/1 + 2/3) / 2, u2 (1/2) / 1 -> 0.667 (Evidently's own MAP says 1.17 here)
        (4, {"ndcg_at_4": ((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)) + 1 / math.log2(3)) / 2,
             "hit_rate_at_4": 1.0, "map_at_4": ((1 + 2 / 3) / 2 + 0.5) / 2}),
    ],
)
def test_evidently_ranking_metrics_match_hand_computed_values(ranked, k, expected):
    from continuum import ranking

    spec, holdout, scores, train = ranked
    values, html = ranking.evaluate(spec, holdout, scores, train, k=k)
    for name, value in expected.items():
        assert values[name] == pytest.approx(value), name
    assert {f"popularity_coverage_at_{k}", f"popularity_arp_at_{k}", f"popularity_gini_at_{k}"} <= set(values)
    assert html.lstrip().startswith("<!DOCTYPE html>") and "NDCG" in html and "Popularity" in html


def test_k_beyond_every_users_list_is_judged_at_the_longest_list(ranked):
    """Evidently raises when no user has k candidates: the holdout is judged at the longest list it has."""
    from continuum import ranking

    spec, holdout, scores, train = ranked
    values, _ = ranking.evaluate(spec, holdout, scores, train, k=50)
    assert "ndcg_at_4" in values and values["map_at_4"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)


def test_map_at_k_is_one_for_a_perfect_ranking_and_ignores_users_without_relevant_items():
    from continuum.ranking import map_at_k

    frame = pd.DataFrame({"u": [1, 1, 1, 2, 2], "rel": [1, 1, 0, 0, 0], "s": [0.9, 0.8, 0.1, 0.5, 0.4]})
    assert map_at_k(frame, "u", "rel", "s", 3) == 1.0
    assert math.isnan(map_at_k(frame.assign(rel=0), "u", "rel", "s", 3))
    assert map_at_k(frame.assign(s=[0.1, 0.8, 0.9, 0.5, 0.4]), "u", "rel", "s", 3) == pytest.approx((1 / 2 + 2 / 3) / 2)
