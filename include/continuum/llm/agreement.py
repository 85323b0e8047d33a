"""Does the judge agree with people? Cohen's kappa and a confusion matrix, per window.

A judge's score is only evidence when it says what the assistant's users say. Every
window, the conversations both the users and the judge rated are split into good
(rating >= `judge.pass_rating`) and not, for each of them, and compared with
scikit-learn's `cohen_kappa_score` and `confusion_matrix`. Kappa rather than raw
agreement, because when most conversations are good a judge that calls everything
good agrees 90% of the time and knows nothing (its kappa is 0). The judge counts as a
promotion criterion only while kappa is at least `judge.min_agreement` on at least
`judge.min_rated` conversations; when every rating falls in one class kappa is
undefined, and the judge does not count either. Pure: no MLflow, S3 or LLM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

LABELS = ("good", "not good")


def measure(rows: Sequence[dict[str, Any]], pass_rating: int) -> dict[str, Any]:
    """Agreement on the rows that carry both `human` and `judge` ratings (1-5).

    Returns n, kappa (None when undefined), the observed agreement, the confusion matrix
    (rows: people, columns: judge; `LABELS` order) and the disagreeing rows.
    """
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    rated = [r for r in rows if r.get("human") is not None and r.get("judge") is not None]
    people = [LABELS[0] if r["human"] >= pass_rating else LABELS[1] for r in rated]
    judge = [LABELS[0] if r["judge"] >= pass_rating else LABELS[1] for r in rated]
    disagreements = [r for r, p, j in zip(rated, people, judge, strict=True) if p != j]
    if not rated:
        return {"n": 0, "kappa": None, "observed": None, "confusion": None, "disagreements": []}
    matrix = confusion_matrix(people, judge, labels=list(LABELS)).tolist()
    kappa = None
    if len({*people, *judge}) > 1:
        value = float(cohen_kappa_score(people, judge, labels=list(LABELS)))
        kappa = None if math.isnan(value) else round(value, 4)
    return {
        "n": len(rated),
        "kappa": kappa,
        "observed": round(1 - len(disagreements) / len(rated), 4),
        "confusion": {"rows": "people", "columns": "judge", "labels": list(LABELS), "matrix": matrix},
        "disagreements": disagreements,
    }


def counts(agreement: dict[str, Any], min_agreement: float, min_rated: int) -> tuple[bool, str]:
    """Whether the judge's score counts this window, and why (or why not) in one sentence."""
    n, kappa = agreement["n"], agreement["kappa"]
    if n < min_rated:
        return False, (
            f"judge not counted: only {n} conversations rated by both people and the judge, "
            f"{min_rated} needed to measure agreement"
        )
    if kappa is None:
        return False, f"judge not counted: agreement with people is undefined on {n} conversations (one class only)"
    if kappa < min_agreement:
        return False, (
            f"judge not counted: Cohen's kappa with people {kappa:.2f} < min_agreement {min_agreement:.2f} "
            f"on {n} conversations"
        )
    return True, f"judge counted: Cohen's kappa with people {kappa:.2f} >= {min_agreement:.2f} on {n} conversations"
