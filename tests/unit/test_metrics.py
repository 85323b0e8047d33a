"""Metrics against values computed by hand on a five-row example."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from continuum import metrics
from continuum.specs import get_domain

Y = [1, 0, 1, 0, 1]
S = [0.9, 0.4, 0.35, 0.8, 0.7]
# At threshold 0.5 the predictions are [1, 0, 0, 1, 1]: TP=2, FP=1, FN=1, TN=1.
# Ranked by score: .9(+) .8(-) .7(+) .4(-) .35(+): precision/recall after each cut:
# 1/1 1/3, 1/2 1/3, 2/3 2/3, 2/4 2/3, 3/5 3/3.


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("accuracy", 3 / 5),
        ("precision", 2 / 3),
        ("recall", 2 / 3),
        ("f1", 2 / 3),
        ("roc_auc", 3 / 6),  # of the 6 positive/negative pairs, 3 are ranked right
        ("brier", (0.1**2 + 0.4**2 + 0.65**2 + 0.8**2 + 0.3**2) / 5),
        ("log_loss", -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.2) + math.log(0.7)) / 5),
        ("average_precision", (1 + 2 / 3 + 3 / 5) / 3),
    ],
)
def test_metric_matches_hand_computation(name, expected):
    assert metrics.compute(name, Y, S) == pytest.approx(expected)


@pytest.mark.parametrize(("precision", "expected"), [(0.9, 1 / 3), (0.65, 2 / 3), (0.6, 1.0)])
def test_recall_at_precision(precision, expected):
    assert metrics.compute("recall_at_precision", Y, S, precision=precision) == pytest.approx(expected)


def test_threshold_and_positive_label_are_honoured():
    labels = ["yes", "no", "yes", "no", "yes"]
    assert metrics.compute("accuracy", labels, S, positive_label="yes") == pytest.approx(3 / 5)
    # Threshold 0.3: every row predicted positive, so accuracy is the positive share.
    assert metrics.compute("accuracy", Y, S, threshold=0.3) == pytest.approx(3 / 5)
    assert metrics.compute("recall", Y, S, threshold=0.3) == 1.0
    assert metrics.compute("precision", Y, S, threshold=0.85) == 1.0


def test_single_class_batch_gives_nan_auc_not_an_error():
    assert math.isnan(metrics.compute("roc_auc", [0, 0, 0], [0.1, 0.2, 0.3]))
    assert metrics.compute("accuracy", [0, 0, 0], [0.1, 0.2, 0.3]) == 1.0


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown metric 'auc'.*roc_auc"):
        metrics.compute("auc", Y, S)
    with pytest.raises(ValueError, match="recall_at_precision"):
        metrics.higher_is_better("nope")


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="5 labels but 4 scores"):
        metrics.compute("accuracy", Y, S[:4])


def test_direction():
    assert metrics.higher_is_better("accuracy") and metrics.higher_is_better("recall_at_precision")
    assert not metrics.higher_is_better("brier") and not metrics.higher_is_better("log_loss")


class _FixedModel:
    """A fitted-model stand-in that returns the `score` column as the positive probability."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame):
        s = frame["score"].to_numpy()
        return np.column_stack([1 - s, s])


def _frame():
    return pd.DataFrame(
        {"has_claim": Y * 2, "score": S * 2, "region": ["north"] * 5 + ["south"] * 4 + [None]}
    )


def test_evaluate_puts_the_primary_metric_first_with_the_standard_set():
    base = get_domain("insurance_claim_risk")
    raw = base.model_dump()
    raw["monitoring"] = {
        **raw["monitoring"],
        "primary_metric": "recall_at_precision",
        "metric_params": {"precision": 0.65},
    }
    spec = type(base).model_validate(raw)
    result = metrics.evaluate(spec, _FixedModel(), _frame())
    assert list(result) == ["recall_at_precision", "accuracy", "roc_auc", "brier"]
    assert result["recall_at_precision"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(3 / 5)


def test_evaluate_needs_the_label():
    spec = get_domain("insurance_claim_risk")
    with pytest.raises(ValueError, match="has_claim"):
        metrics.evaluate(spec, _FixedModel(), _frame().drop(columns=["has_claim"]))


def test_evaluate_segments_splits_by_value_and_counts_rows():
    spec = get_domain("insurance_claim_risk")
    result = metrics.evaluate_segments(spec, _FixedModel(), _frame(), "region")
    assert set(result) == {"north", "south", None}
    assert result["north"]["accuracy"] == pytest.approx(3 / 5)
    assert result["north"]["rows"] == 5 and result["south"]["rows"] == 4 and result[None]["rows"] == 1
    # south holds rows 5..8 of the doubled example: labels 1,0,1,0 with scores .9,.4,.35,.8.
    assert result["south"]["accuracy"] == pytest.approx(2 / 4)
    assert math.isnan(result[None]["roc_auc"])
