"""Estimated performance before labels: confidence-based performance estimation (CBPE).

Production batches are scored long before their labels arrive. If the champion's
probabilities are calibrated, a row scored p is positive with probability p, so the
labels of a batch are a draw of y_i ~ Bernoulli(p_i) and the metric the champion will
realise is, in expectation, the metric over such draws. That is what NannyML's CBPE
estimates; here:

- accuracy at the threshold t: mean(p if p >= t else 1 - p) (closed form; mean(max(p, 1-p)) at 0.5);
- brier: mean(p (1 - p)); log_loss: the mean binary entropy of p (closed forms);
- roc_auc: a seeded Monte-Carlo over sampled label vectors, each scored from the ranks of p
  (computed once; the Mann-Whitney form of the AUC, ties averaged as roc_auc_score does);
- every other metric (recall_at_precision, precision, f1, ...): a seeded Monte-Carlo of
  `metrics.compute` over sampled label vectors.

CBPE sees covariate shift (more rows near the decision boundary lowers the estimate) and
never concept drift (the same features with other labels): that is what the realised
metric from late labels is for (`continuum.labels`), and why an estimate only warns.

Why not NannyML itself (checked 2026-12 against this project's lock, uv 0.13.9):
`uv pip install --dry-run -r requirements.txt nannyml` has no solution (nannyml>=0.13
needs s3fs -> aiobotocore, which pins botocore<1.43.118 while the lock has 1.44.8).
Re-locking `requirements.in` + nannyml does resolve, to nannyml 0.13.1, but downgrades
boto3/botocore (1.44.8 -> 1.43.117), redis (8.1.0 -> 6.4.0) and kombu, and adds about 30
packages, among them xgboost, lightgbm, nvidia-nccl-cu12, gcsfs, google-cloud-storage and a
usage-telemetry client (segment-analytics-python). The estimate is a few lines of numpy.

Calibration: the shipped domains' HistGradientBoostingClassifier (log loss) is close to
calibrated on its own. Measured on the simulator (train on 2n rows of seed 0, score n rows
of seed 1): expected calibration error 0.021 (claim risk), 0.002 (fraud), 0.011 (retail);
estimate vs realised 0.926 vs 0.910 accuracy, 0.612 vs 0.652 recall at precision 0.5
(Monte-Carlo sd 0.03), 0.822 vs 0.805 ROC-AUC. On small data it is not: on sklearn's breast
cancer set (285 training rows, 10 splits) it overestimates accuracy by 0.025 on average
(isotonic calibration: 0.008), while logistic regression is calibrated (-0.009;
tests/unit/test_performance_estimate.py). No calibration step is added to training: a
domain with little data and a boosted model gets an optimistic estimate, which the realised
metric from late labels corrects (`estimate_error` in its record).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from continuum import metrics
from continuum.directions import worse_by

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from continuum.decision import DecisionRecord, Estimate
    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)

SAMPLES = 200  # Monte-Carlo label draws: the estimate's own noise is sd/sqrt(200), under 0.003 on the shipped domains
THRESHOLD = 0.5  # metrics.compute's threshold for accuracy, precision, recall, f1


def expected_metric(
    name: str,
    probabilities,
    *,
    threshold: float = THRESHOLD,
    samples: int = SAMPLES,
    seed: int = 0,
    **params: Any,
) -> float | None:
    """The expected value of metric `name` when each row's label is drawn from its probability.

    None when the metric is undefined on every draw (e.g. roc_auc on one row). `params`
    go to the metric (recall_at_precision takes `precision=0.9`).
    """
    import numpy as np

    p = np.clip(np.asarray(probabilities, dtype="float64"), 0.0, 1.0)
    if p.size == 0:
        return None
    if name == "accuracy":
        return float(np.mean(np.where(p >= threshold, p, 1.0 - p)))
    if name == "brier":
        return float(np.mean(p * (1.0 - p)))
    if name == "log_loss":
        q = np.clip(p, 1e-15, 1 - 1e-15)
        return float(np.mean(-(q * np.log(q) + (1 - q) * np.log(1 - q))))
    rng = np.random.default_rng(seed)
    draw = _auc_from_ranks(p) if name == "roc_auc" else None
    values = []
    for _ in range(samples):
        y = rng.random(p.size) < p
        value = (
            draw(y) if draw else metrics.compute(name, y.astype("int64"), p, threshold=threshold, **params)
        )
        if not math.isnan(value):
            values.append(value)
    return float(np.mean(values)) if values else None


def _auc_from_ranks(p: np.ndarray):
    """roc_auc of labels y against the fixed scores p, from p's ranks: O(n) per draw instead of a sort."""
    from scipy.stats import rankdata

    ranks = rankdata(p)  # average ranks for ties, which is how roc_auc_score counts them

    def auc(y: np.ndarray) -> float:
        positives = int(y.sum())
        negatives = y.size - positives
        if positives == 0 or negatives == 0:
            return math.nan
        return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))

    return auc


def estimate(spec: DomainSpec, probabilities) -> float | None:
    """The spec's primary metric (with `monitoring.metric_params`) expected from `probabilities`."""
    return expected_metric(
        spec.monitoring.primary_metric,
        probabilities,
        seed=spec.training.seed,
        **dict(spec.monitoring.metric_params or {}),
    )


def for_batch(spec: DomainSpec, version: str, holdout: dict[str, float], probabilities) -> Estimate:
    """The estimate of one scored batch, with its shortfall against the version's holdout metric."""
    from continuum.decision import Estimate

    metric = spec.monitoring.primary_metric
    value = estimate(spec, probabilities)
    reference = holdout.get(metric)
    drop = None if value is None or reference is None else worse_by(metric, reference, value)
    return Estimate(
        metric=metric,
        value=value,
        version=version,
        rows=len(probabilities),
        reference=reference,
        drop=drop,
        max_drop=spec.monitoring.max_estimated_drop,
    )


def drop_condition(spec: DomainSpec, batch_id: str, estimated: Estimate):
    """`estimated_drop` (warning) while the estimate is worse than the holdout metric by more than allowed.

    None when the check is off (`monitoring.max_estimated_drop: null`) or nothing can be compared.
    """
    from continuum.alerts import Condition

    if estimated.max_drop is None or estimated.drop is None:
        return None
    return Condition(
        kind="estimated_drop",
        domain=spec.name,
        owner=spec.owner,
        firing=estimated.drop > estimated.max_drop,
        summary=(
            f"estimated {estimated.metric}={estimated.value:.4g} of champion v{estimated.version} on batch "
            f"{batch_id} is {estimated.drop:.4g} worse than its holdout {estimated.reference:.4g} "
            f"(allowed {estimated.max_drop:.4g}); no labels yet, nothing retrains on an estimate"
        ),
        facts={
            "metric": estimated.metric,
            "estimated": estimated.value,
            "holdout": estimated.reference,
            "drop": estimated.drop,
            "max_drop": estimated.max_drop,
            "champion_version": estimated.version,
            "rows": estimated.rows,
        },
        batch_id=batch_id,
    )


def after_scoring(
    spec: DomainSpec, record: DecisionRecord, model, frame: pd.DataFrame, where: dict | None = None
) -> None:
    """Record the CBPE estimate of an unlabelled batch the champion just scored, and alert a large drop.

    A drop alerts (`estimated_drop`, with noise control); an estimate back within
    `max_estimated_drop` on a later batch sends `resolved` once. `where` is the scoring
    task (`alerts.task_location`: run, try, log link); without it the alert names the DAG and task only.

    A labelled batch is skipped: its metric was measured by `monitor`. Only `record.estimate`
    and an alert change here: nothing is retrained or promoted on an estimate. Seeded and
    keyed by the batch id, so a retried score task records the same number and pages nobody twice.
    """
    from continuum import alert_delivery, scoring

    if spec.data.target in frame.columns or record.champion is None:
        return
    champion = record.champion
    record.estimate = for_batch(
        spec, champion.version, champion.metrics, scoring.probabilities(spec, model, frame)
    )
    condition = drop_condition(spec, record.batch_id, record.estimate)
    if condition is not None:
        alert_delivery.apply(
            condition,
            occurrence=f"batch:{record.batch_id}",
            **{"dag_id": f"{spec.name}_decide", "task_id": "score", **(where or {})},
        )
    log.info(
        "event=estimate domain=%s batch_id=%s metric=%s estimated=%s holdout=%s drop=%s",
        spec.name,
        record.batch_id,
        record.estimate.metric,
        record.estimate.value,
        record.estimate.reference,
        record.estimate.drop,
    )
