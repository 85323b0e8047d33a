"""Ranking quality of a recommendations domain on the holdout, with Evidently's recommender metrics.

A retail model is judged per impression (`monitoring.primary_metric`, e.g. ROC AUC), but
what a shopper sees is each user's top `scoring.k` items. This module measures that list
on the challenger's holdout with Evidently's recsys metrics: NDCG@k, MAP@k, hit rate@k,
and popularity bias (the share of the catalogue recommended to someone, the mean
popularity of what is recommended, and its Gini index). The training window tells
Evidently how popular each item is. The HTML report comes out in the same style as the
drift report, so both read alike.

MAP@k is our own (`map_at_k`). Measured on Evidently 0.7.23: its MAP takes each user's
"relevance at rank i" as the *last row in frame order* among the top i, and repeats the
last item for users with fewer than i candidates, so MAP@4 came out 1.17 on a frame where
the true value is 0.67. Its NDCG@k and hit rate@k agree with hand-computed values (tests).

`metrics.precision_at_k` and `metrics.catalogue_coverage` stay our own too: they run on
every segment and every late labels file, where building an Evidently report (seconds
each) would cost more than the whole metric. This module runs once per model judged.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd

from continuum.specs import DomainSpec

log = logging.getLogger(__name__)

PREDICTION = "_continuum_score"


def applies(spec: DomainSpec, frame: pd.DataFrame) -> bool:
    """A recommendations spec whose frame has its user and item columns."""
    if spec.scoring.kind != "recommendations":
        return False
    _, user, item = spec.scoring.ranking
    return user in frame.columns and item in frame.columns


def _relevance(spec: DomainSpec, frame: pd.DataFrame) -> pd.Series:
    return (frame[spec.data.target] == spec.data.positive_label).astype("int64")


def _at_k(value: Any, k: int) -> float:
    """The @k value of a top-k curve as Evidently returns it ({'rank': {...}, 'value': {...}} by position)."""
    if isinstance(value, dict) and "value" in value:
        curve = list(value["value"].values())
        if not curve:
            return math.nan
        return float(curve[min(k, len(curve)) - 1])
    return float(value)


def map_at_k(frame: pd.DataFrame, user: str, relevant: str, score: str, k: int) -> float:
    """Mean over users with a relevant item of AP@k = sum of precision@i at each relevant rank i <= k,
    divided by min(k, the user's relevant items): 1 for a perfect ranking. Ties go to row order."""
    ranked = frame.sort_values([user, score], ascending=[True, False], kind="stable")
    rank = ranked.groupby(user, sort=False).cumcount() + 1
    hits = ranked[relevant].to_numpy()
    cumulative = ranked.assign(_hit=hits).groupby(user, sort=False)["_hit"].cumsum().to_numpy()
    contribution = pd.Series((cumulative / rank.to_numpy()) * hits * (rank.to_numpy() <= k), index=ranked.index)
    per_user = contribution.groupby(ranked[user], sort=False).sum()
    relevant_per_user = ranked.groupby(user, sort=False)[relevant].sum()
    judged = relevant_per_user > 0
    if not judged.any():
        return math.nan
    return float((per_user[judged] / relevant_per_user[judged].clip(upper=k)).mean())


def evaluate(
    spec: DomainSpec, holdout: pd.DataFrame, scores, train: pd.DataFrame, k: int | None = None
) -> tuple[dict[str, float], str]:
    """Ranking metrics of `scores` on `holdout` at `k` (default `scoring.k`), named `<metric>_at_<k>`,
    and Evidently's HTML report. Users with no relevant item are left out, as Evidently does."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.datasets import Recsys
    from evidently.metrics import recsys

    spec_k, user, item = spec.scoring.ranking
    k = k or spec_k
    # Evidently's NDCG needs some user with at least k candidates (it raises KeyError otherwise):
    # a holdout where every user has fewer is judged at the longest list it has.
    k = max(1, min(k, int(holdout.groupby(user).size().max()))) if len(holdout) else k
    current = pd.DataFrame(
        {user: holdout[user].to_numpy(), item: holdout[item].to_numpy(), "relevant": _relevance(spec, holdout).to_numpy(),
         PREDICTION: pd.Series(scores, dtype="float64").to_numpy()}
    )
    interactions = train.loc[_relevance(spec, train) == 1, [user, item]]  # what users bought: the items' popularity
    definition = DataDefinition(
        numerical_columns=[PREDICTION, "relevant"],
        ranking=[Recsys(user_id=user, item_id=item, target="relevant", prediction=PREDICTION)],
    )
    names = {
        f"ndcg_at_{k}": recsys.NDCG(k=k),
        f"hit_rate_at_{k}": recsys.HitRate(k=k),
        f"popularity_coverage_at_{k}": recsys.PopularityBiasMetric(k=k, metric="coverage"),
        f"popularity_arp_at_{k}": recsys.PopularityBiasMetric(k=k, metric="arp"),
        f"popularity_gini_at_{k}": recsys.PopularityBiasMetric(k=k, metric="gini"),
    }
    snapshot = Report(list(names.values())).run(
        Dataset.from_pandas(current, data_definition=definition),
        additional_data={"current_train_data": Dataset.from_pandas(interactions)},
    )
    values = [m["value"] for m in snapshot.dict()["metrics"]]
    result = {name: _at_k(value, k) for name, value in zip(names, values, strict=True)}
    result[f"map_at_{k}"] = map_at_k(current, user, "relevant", PREDICTION, k)
    log.info("event=ranking domain=%s rows=%d %s", spec.name, len(current),
             " ".join(f"{n}={v:.4f}" for n, v in result.items()))
    return result, snapshot.get_html_str(as_iframe=False)
