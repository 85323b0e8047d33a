"""Model metrics by name, so a spec can say `primary_metric: roc_auc` and mean it.

Every metric takes the true labels and the *score* of the positive class (a
probability), never hard predictions: threshold metrics (accuracy, precision,
recall, f1) apply `threshold` here, so monitoring, blessing and training all
threshold the same way. Metrics that are undefined on a batch with one class
(roc_auc, average_precision) return NaN rather than raising, because a small
segment with no claims is ordinary, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from continuum.directions import LOWER_IS_BETTER

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from continuum.specs import DomainSpec

STANDARD = ("accuracy", "roc_auc", "brier")


def _accuracy(y, s, t, **_):
    from sklearn.metrics import accuracy_score

    return accuracy_score(y, s >= t)


def _precision(y, s, t, **_):
    from sklearn.metrics import precision_score

    return precision_score(y, s >= t, zero_division=0)


def _recall(y, s, t, **_):
    from sklearn.metrics import recall_score

    return recall_score(y, s >= t, zero_division=0)


def _f1(y, s, t, **_):
    from sklearn.metrics import f1_score

    return f1_score(y, s >= t, zero_division=0)


def _roc_auc(y, s, t, **_):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y, s) if len(set(y.tolist())) == 2 else math.nan


def _average_precision(y, s, t, **_):
    from sklearn.metrics import average_precision_score

    return average_precision_score(y, s) if y.any() else math.nan


def _brier(y, s, t, **_):
    from sklearn.metrics import brier_score_loss

    return brier_score_loss(y, s)


def _log_loss(y, s, t, **_):
    from sklearn.metrics import log_loss

    return log_loss(y, s, labels=[0, 1])


def _recall_at_precision(y, s, t, precision: float = 0.9, **_):
    """The best recall any threshold reaches while keeping precision >= `precision` (0 if none does)."""
    from sklearn.metrics import precision_recall_curve

    if not y.any():
        return math.nan
    precisions, recalls, _ = precision_recall_curve(y, s)
    reachable = recalls[precisions >= precision]
    return float(reachable.max()) if reachable.size else 0.0


METRICS: dict[str, Callable[..., float]] = {
    "accuracy": _accuracy,
    "roc_auc": _roc_auc,
    "brier": _brier,
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "log_loss": _log_loss,
    "recall_at_precision": _recall_at_precision,
    "average_precision": _average_precision,
}


def _check(name: str) -> None:
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}'; use one of: {', '.join(sorted(METRICS))}")


def higher_is_better(name: str) -> bool:
    _check(name)
    return name not in LOWER_IS_BETTER


def compute(name: str, y_true, y_score, *, positive_label: Any = 1, threshold: float = 0.5, **kw) -> float:
    """Metric `name` of positive-class scores `y_score` against labels `y_true`.

    Extra keywords go to the metric (`recall_at_precision` takes `precision=0.9`).
    """
    import numpy as np

    _check(name)
    y = np.asarray(y_true) == positive_label
    scores = np.asarray(y_score, dtype="float64")
    if y.shape != scores.shape:
        raise ValueError(f"{name}: {y.shape[0]} labels but {scores.shape[0]} scores")
    if y.size == 0:
        raise ValueError(f"{name}: no rows to evaluate")
    return float(METRICS[name](y.astype("int64"), scores, threshold, **kw))


def positive_scores(spec: DomainSpec, model, frame: pd.DataFrame) -> np.ndarray:
    """The model's probability of the spec's positive label for each row of `frame`."""
    classes = list(model.classes_)
    label = spec.data.positive_label
    if label not in classes:
        raise ValueError(
            f"positive_label {label!r} (data.positive_label) is not a class the model learned: {classes}"
        )
    from continuum import training

    # A fitted pipeline gets exactly its training columns (a column a newer spec added is
    # dropped); a model that records none (a rules model) reads what it needs by name.
    inputs = frame if training.trained_columns(model) is None else training.model_inputs(spec, model, frame)
    return model.predict_proba(inputs)[:, classes.index(label)]


def scorer(spec: DomainSpec) -> Callable[..., float]:
    """The spec's primary metric as a scikit-learn scorer `(estimator, X, y) -> float`, for searches.

    scikit-learn maximises a scorer, so a lower-is-better metric is negated.
    """
    name = spec.monitoring.primary_metric
    sign = 1.0 if higher_is_better(name) else -1.0
    kwargs = _metric_kwargs(spec, name)

    def score(estimator, X, y) -> float:
        value = compute(
            name, y, positive_scores(spec, estimator, X), positive_label=spec.data.positive_label, **kwargs
        )
        return sign * value

    return score


def metric_names(spec: DomainSpec) -> list[str]:
    """The spec's primary metric first, then the standard set."""
    primary = spec.monitoring.primary_metric
    _check(primary)
    return [primary, *(m for m in STANDARD if m != primary)]


def _metric_kwargs(spec: DomainSpec, name: str) -> dict[str, Any]:
    """Keywords for the primary metric from `monitoring.metric_params` (e.g. {precision: 0.95})."""
    if name != spec.monitoring.primary_metric:
        return {}
    return dict(getattr(spec.monitoring, "metric_params", None) or {})


def primary_from_scores(spec: DomainSpec, y_true, scores) -> float | None:
    """The spec's primary metric (with `monitoring.metric_params`) of positive-class `scores`; None when undefined."""
    name = spec.monitoring.primary_metric
    value = compute(name, y_true, scores, positive_label=spec.data.positive_label, **_metric_kwargs(spec, name))
    return None if math.isnan(value) else value


def _scores_to_metrics(spec: DomainSpec, y_true, scores) -> dict[str, float]:
    return {
        name: compute(
            name, y_true, scores, positive_label=spec.data.positive_label, **_metric_kwargs(spec, name)
        )
        for name in metric_names(spec)
    }


def _labels(spec: DomainSpec, frame: pd.DataFrame):
    target = spec.data.target
    if target not in frame.columns:
        raise ValueError(f"cannot evaluate: the frame has no label column '{target}' (data.target)")
    if frame[target].isna().any():
        raise ValueError(f"cannot evaluate: label column '{target}' has missing values")
    return frame[target].to_numpy()


def evaluate(spec: DomainSpec, model, frame: pd.DataFrame) -> dict[str, float]:
    """The primary metric and accuracy, roc_auc and brier of `model` on a labelled frame.

    A recommendations domain (`scoring.kind: recommendations`) also gets
    `precision_at_k` and `coverage` of the top `scoring.k` items per user, when
    the frame has the user and item columns.
    """
    y_true = _labels(spec, frame)
    scores = positive_scores(spec, model, frame)
    result = _scores_to_metrics(spec, y_true, scores)
    if spec.scoring.kind == "recommendations":
        result.update(_ranking_metrics(spec, frame, scores))
    return result


def _top_k(frame: pd.DataFrame, user_column: str, score_column: str, k: int, item_column: str | None):
    """Each user's `k` best-scored rows; ties go to the smaller item (as batch scoring breaks them), else row order."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}; set scoring.k")
    missing = [
        c for c in (user_column, score_column, item_column) if c is not None and c not in frame.columns
    ]
    if missing:
        raise ValueError(f"cannot rank: the frame has no column(s) {missing}")
    keys = [user_column, score_column] + ([item_column] if item_column else [])
    ascending = [True, False] + ([True] if item_column else [])
    ranked = frame.sort_values(keys, ascending=ascending, kind="stable")
    return ranked[ranked.groupby(user_column, sort=False).cumcount() < k]


def precision_at_k(
    frame: pd.DataFrame,
    user_column: str,
    label_column: str,
    score_column: str,
    k: int,
    *,
    positive_label: Any = 1,
    item_column: str | None = None,
) -> float:
    """Mean over users of the share of positives among their top `k` rows by score.

    A user with fewer than `k` impressions is judged on those they have, so a
    small candidate set is not counted as a miss. NaN when the frame has no rows.
    """
    if frame.empty:
        return math.nan
    top = _top_k(frame, user_column, score_column, k, item_column)
    hits = (top[label_column] == positive_label).astype("float64")
    return float(hits.groupby(top[user_column]).mean().mean())


def catalogue_coverage(recommendations: pd.DataFrame, item_column: str, catalogue_size: int) -> float:
    """Share of the catalogue's items that appear in at least one user's recommendations."""
    if catalogue_size < 1:
        raise ValueError(
            f"catalogue_size must be at least 1, got {catalogue_size}; set scoring.catalogue_size"
        )
    if item_column not in recommendations.columns:
        raise ValueError(f"cannot measure coverage: no column '{item_column}' in the recommendations")
    return min(1.0, recommendations[item_column].nunique() / catalogue_size)


def _ranking_metrics(spec: DomainSpec, frame: pd.DataFrame, scores) -> dict[str, float]:
    """precision_at_k and coverage for a recommendations spec; {} when the frame lacks its user or item column.

    The catalogue is `scoring.catalogue_size` when the spec sets it, else the items
    that appear in the frame (the candidates the model could have recommended).
    """
    extra = dict(spec.scoring.model_extra or {})
    k, user, item = spec.scoring.ranking
    if user not in frame.columns or item not in frame.columns:
        return {}
    ranked = frame[[user, item, spec.data.target]].assign(_score=scores)
    catalogue = int(extra.get("catalogue_size") or ranked[item].nunique())
    return {
        "precision_at_k": precision_at_k(
            ranked,
            user,
            spec.data.target,
            "_score",
            k,
            positive_label=spec.data.positive_label,
            item_column=item,
        ),
        "coverage": catalogue_coverage(_top_k(ranked, user, "_score", k, item), item, catalogue),
    }


def evaluate_segments(
    spec: DomainSpec, model, frame: pd.DataFrame, column: str
) -> dict[Any, dict[str, float]]:
    """`evaluate` per value of `column` (missing values form their own segment, `None`).

    Each segment also carries `rows`, because a metric on 12 rows means little.
    """
    if column not in frame.columns:
        raise ValueError(f"cannot segment by '{column}': no such column in the frame")
    y_true = _labels(spec, frame)
    scores = positive_scores(spec, model, frame)
    keys = frame[column].astype(object).where(frame[column].notna(), None).to_numpy()
    result: dict[Any, dict[str, float]] = {}
    for segment in dict.fromkeys(keys.tolist()):
        mask = keys == segment if segment is not None else frame[column].isna().to_numpy()
        result[segment] = {**_scores_to_metrics(spec, y_true[mask], scores[mask]), "rows": float(mask.sum())}
    return result
