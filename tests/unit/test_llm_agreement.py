"""Judge-human agreement: Cohen's kappa, the confusion matrix, and when the judge counts."""

from __future__ import annotations

import random

from continuum.llm.agreement import counts, measure


def _rows(pairs):
    return [{"conversation_id": str(i), "version": "1", "human": h, "judge": j} for i, (h, j) in enumerate(pairs)]


def test_kappa_and_confusion_match_a_hand_computation():
    # people good/judge good 20, good/not 5, not/good 10, not/not 15: po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5
    pairs = [(5, 5)] * 20 + [(5, 2)] * 5 + [(1, 4)] * 10 + [(2, 1)] * 15
    agreement = measure(_rows(pairs), pass_rating=4)
    assert agreement["n"] == 50
    assert agreement["kappa"] == 0.4
    assert agreement["observed"] == 0.7
    assert agreement["confusion"]["matrix"] == [[20, 5], [10, 15]]
    assert len(agreement["disagreements"]) == 15
    assert {(d["human"], d["judge"]) for d in agreement["disagreements"]} == {(5, 2), (1, 4)}


def test_a_judge_that_calls_everything_good_agrees_often_and_does_not_count():
    pairs = [(5, 5)] * 40 + [(1, 5)] * 10
    agreement = measure(_rows(pairs), pass_rating=4)
    assert agreement["observed"] == 0.8 and agreement["kappa"] == 0.0
    counted, reason = counts(agreement, min_agreement=0.6, min_rated=30)
    assert counted is False and "0.00 < min_agreement 0.60" in reason


def test_an_agreeing_judge_counts_and_a_random_one_does_not():
    rng = random.Random(3)
    humans = [rng.choice([1, 2, 3, 4, 5]) for _ in range(200)]
    agreeing = measure(_rows([(h, h if rng.random() < 0.9 else 6 - h) for h in humans]), 4)
    guessing = measure(_rows([(h, rng.choice([1, 2, 3, 4, 5])) for h in humans]), 4)
    assert counts(agreeing, 0.6, 30)[0] is True
    assert counts(guessing, 0.6, 30)[0] is False and abs(guessing["kappa"]) < 0.2


def test_too_few_rated_or_one_class_only_does_not_count():
    few = measure(_rows([(5, 5), (1, 1)] * 5), 4)
    assert counts(few, 0.6, 30) == (
        False,
        "judge not counted: only 10 conversations rated by both people and the judge, 30 needed to measure agreement",
    )
    one_class = measure(_rows([(5, 4)] * 40), 4)
    assert one_class["kappa"] is None
    assert "undefined" in counts(one_class, 0.6, 30)[1]


def test_unrated_or_ungraded_conversations_are_left_out():
    rows = _rows([(5, 5), (1, 1)] * 20) + [{"conversation_id": "x", "version": "1", "human": None, "judge": 5}]
    rows.append({"conversation_id": "y", "version": "1", "human": 4, "judge": None})
    assert measure(rows, 4)["n"] == 40
    assert measure([], 4) == {"n": 0, "kappa": None, "observed": None, "confusion": None, "disagreements": []}
