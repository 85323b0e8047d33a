"""Monitoring: is a validated batch still like the champion's training data, and is the champion still good?

`detect_drift` compares a batch with the champion's reference sample through
Evidently's `DataDriftPreset`, column by column, on the spec's feature columns
that the reference has too (the id, the label and datetime columns say nothing
about the inputs the model sees; a column the spec added later has no reference).
`champion_metric` and `below_floor` answer the second question on labelled batches. Evidently takes seconds to import, so it is imported inside
`detect_drift` only: the DAG files can import this module at parse time.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from continuum import drift_stats

if TYPE_CHECKING:
    import pandas as pd

    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)

NUMERICAL = ("int", "float")
CATEGORICAL = ("category", "bool", "string")
ALL_MISSING = drift_stats.ALL_MISSING


class DriftResult(BaseModel):
    """What the decision record keeps of a drift check (the HTML report is stored separately)."""

    detected: bool
    share: float = Field(description="share of compared feature columns that drifted")
    columns: list[str] = Field(default_factory=list, description="drifted column names")
    scores: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per column: stattest, score, threshold, drifted"
    )
    reference_rows: int = Field(description="reference rows the verdict compared with (all of them)")
    current_rows: int = Field(description="batch rows the verdict read (all of them)")
    not_compared: list[str] = Field(
        default_factory=list,
        description="feature columns the reference lacks (added to the spec after the champion was trained)",
    )


def drift_columns(spec: DomainSpec) -> tuple[list[str], list[str]]:
    """(numerical, categorical) feature columns compared for drift; datetime columns are left out."""
    numerical = [c.name for c in spec.data.feature_columns if c.type in NUMERICAL]
    categorical = [c.name for c in spec.data.feature_columns if c.type in CATEGORICAL]
    return numerical, categorical


def _prepare(
    frame: pd.DataFrame, numerical: list[str], categorical: list[str], which: str, max_rows: int, seed: int
) -> pd.DataFrame:
    """A new frame of at most `max_rows` sampled rows of the compared columns, typed for Evidently.

    Sampling comes first so coercion never touches a million rows. Numbers become
    float64 and categories plain objects, so Evidently does not guess types (a
    nullable Int64, or pandas Categoricals with different categories per frame).
    """
    import pandas as pd

    missing = [name for name in [*numerical, *categorical] if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{which} data has no column(s) {missing}; the validation gate should have rejected it, validate the batch first"
        )
    rows = frame[[*numerical, *categorical]]
    if len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed)
    out = pd.DataFrame(index=rows.index)
    for name in numerical:
        try:
            out[name] = pd.to_numeric(rows[name], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{which} column '{name}' is declared numeric but holds non-numbers ({exc})"
            ) from exc
    for name in categorical:
        out[name] = rows[name].astype(object)
    return out


def _all_missing_scores(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Columns that are entirely empty in either frame, which Evidently refuses to compare.

    A column that empties out in one frame only has drifted as far as it can; one
    that is empty in both has not moved at all.
    """
    scores = {}
    for name in reference.columns:
        ref_empty, cur_empty = reference[name].isna().all(), current[name].isna().all()
        if ref_empty or cur_empty:
            drifted = bool(ref_empty != cur_empty)
            scores[name] = {
                "stattest": ALL_MISSING,
                "score": float(drifted),
                "threshold": 0.5,
                "drifted": drifted,
            }
    return scores


def _run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, numerical, categorical, drift_share: float
):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    report = Report(
        [DataDriftPreset(columns=[*numerical, *categorical], drift_share=drift_share)], include_tests=True
    )
    with warnings.catch_warnings():
        # Evidently's own pandas deprecation noise, once per column per batch; not ours to fix.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"evidently\.")
        return report.run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )


def _drifted_by_rule(stattest: str, score: float, threshold: float) -> bool:
    """Evidently's own rule, used only if the snapshot carries no per-column test.

    Its p-value tests ("K-S p_value", "chi-square p_value", ...) flag drift below
    the threshold; its distances (Wasserstein, Jensen-Shannon, PSI, ...) at or above it.
    """
    return score < threshold if "p_value" in stattest.lower() else score >= threshold


def parse_snapshot(snapshot: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], tuple[int, float] | None]:
    """Per-column scores and the (count, share) of drifted columns out of `Snapshot.dict()`.

    The per-column verdict comes from Evidently's "Value Drift" test (FAIL = drifted),
    linked to its `ValueDrift` metric by metric id; the count comes from
    `DriftedColumnsCount`, or None if the snapshot has none.
    """
    failed = {
        test.get("metric_config", {}).get("metric_id"): test.get("status") == "FAIL"
        for test in snapshot.get("tests", [])
        if test.get("id") == "drift"
    }
    scores: dict[str, dict[str, Any]] = {}
    counted: tuple[int, float] | None = None
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount") and isinstance(metric.get("value"), dict):
            counted = (int(metric["value"]["count"]), float(metric["value"]["share"]))
        elif kind.endswith("ValueDrift"):
            score = {
                "stattest": str(config.get("method")),
                "score": float(metric["value"]),
                "threshold": float(config["threshold"]),
            }
            drifted = failed.get(metric.get("id"))
            if drifted is None:
                drifted = _drifted_by_rule(score["stattest"], score["score"], score["threshold"])
            scores[config["column"]] = {**score, "drifted": bool(drifted)}
    return scores, counted


def detect_drift(
    spec: DomainSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    max_rows: int = 50_000,
    seed: int = 0,
    profile: dict[str, drift_stats.ColumnProfile] | None = None,
    report: bool = True,
) -> tuple[DriftResult, str]:
    """Data drift of `current` against `reference` on every row, and Evidently's HTML report.

    The verdict of each column is Evidently's own default test (a normed Wasserstein or a
    Jensen-Shannon distance at 0.1), computed by `continuum.drift_stats` on every row of
    `current`. It is compared with `profile`, the reference's statistics made once per
    champion (built from `reference` when not given). Evidently itself took ~133 s for
    1M x 25; this takes a few seconds (benchmarks/bench_drift.py, with its agreement with
    Evidently unsampled). The HTML report for people is Evidently's, on both frames
    sampled to `max_rows` rows (seeded, so reruns agree). Columns with 1,000 reference
    rows or fewer get Evidently's p-value tests on those samples, as Evidently would
    choose. Columns entirely empty in one frame count as drifted without any test
    (Evidently refuses them); if every column is, the HTML is "". With `report=False` no
    HTML is made. Dataset drift is `share >= monitoring.drift_share`. Scores and columns
    follow the spec's order. Feature columns the reference lacks (the spec added them
    after the champion was trained) are left out and listed in `not_compared`; the
    current batch must have every one (the validation gate sees to it).
    """
    numerical, categorical = drift_columns(spec)
    # A column added to the contract after the champion was trained is not in its reference:
    # drift is measured on the columns both sides have, and the rest is named in the result.
    not_compared = [name for name in [*numerical, *categorical] if name not in reference.columns]
    numerical = [name for name in numerical if name not in not_compared]
    categorical = [name for name in categorical if name not in not_compared]
    if not numerical and not categorical:
        raise ValueError(
            f"{spec.name}: no int/float/category/bool/string feature column to compare for drift"
            + (f" (the reference has none of {not_compared})" if not_compared else "")
        )
    ref = _prepare(reference, numerical, categorical, "reference", max_rows, seed)
    cur = _prepare(current, numerical, categorical, "current", max_rows, seed)
    for which, frame in (("reference", ref), ("current", cur)):
        if frame.empty:
            raise ValueError(
                f"{spec.name}: the {which} frame has no rows; there is nothing to compare for drift"
            )

    scores = _all_missing_scores(reference[ref.columns], current[cur.columns])
    if profile is None or not set(ref.columns) <= set(profile):
        profile = drift_stats.profile(reference, numerical, categorical)
    small = [n for n in ref.columns if n not in scores and drift_stats.needs_evidently(profile[n])]
    for name in ref.columns:
        if name not in scores and name not in small:
            scores[name] = _column_drift(name, profile[name], current[name])
    drift_share = spec.monitoring.drift_share
    html, counted = "", None
    compared_num = [n for n in numerical if scores.get(n, {}).get("stattest") != ALL_MISSING]
    compared_cat = [n for n in categorical if scores.get(n, {}).get("stattest") != ALL_MISSING]
    if (small or report) and (compared_num or compared_cat):
        snapshot = _run_evidently(ref, cur, compared_num, compared_cat, drift_share)
        evidently_scores, evidently_count = parse_snapshot(snapshot.dict())
        scores.update({name: evidently_scores[name] for name in small})
        if len(small) == len(compared_num) + len(compared_cat):
            counted = evidently_count  # only then is Evidently's own count about the same verdicts
        if report:
            html = _report_html(snapshot.get_html_str(as_iframe=False), len(ref), len(cur), len(current))
    ordered = {c.name: scores[c.name] for c in spec.data.feature_columns if c.name in scores}
    result = _result(ordered, counted, drift_share, len(reference), len(current)).model_copy(
        update={"not_compared": not_compared}
    )
    log.info(
        "event=drift domain=%s detected=%s share=%.3f columns=%s reference_rows=%d current_rows=%d"
        " not_compared=%s evidently_tests=%s",
        spec.name,
        result.detected,
        result.share,
        ",".join(result.columns) or "-",
        len(reference),
        len(current),
        ",".join(not_compared) or "-",
        ",".join(small) or "-",
    )
    return result, html


def _column_drift(name: str, column: drift_stats.ColumnProfile, values: pd.Series) -> dict[str, Any]:
    try:
        return drift_stats.column_drift(column, values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"current column '{name}' is declared numeric but holds non-numbers ({exc})") from exc


def _report_html(html: str, reference_rows: int, current_rows: int, batch_rows: int) -> str:
    """Evidently's page, with one line saying the verdict in the decision is on every row."""
    note = (
        f"<p style='font-family:sans-serif;background:#fff6d5;padding:6px'>Continuum: this report shows "
        f"samples of {reference_rows:,} reference and {current_rows:,} current rows. The drift verdict in the "
        f"decision record uses the same tests on all {batch_rows:,} rows of the batch, so a column near its "
        "threshold may read differently here.</p>"
    )
    return html.replace("<body>", "<body>" + note, 1) if "<body>" in html else note + html


def _result(scores, counted, drift_share: float, reference_rows: int, current_rows: int) -> DriftResult:
    """Share of drifted columns over every compared column, Evidently's and the empty ones.

    Evidently's own DriftedColumnsCount is computed from the same statistics; if it
    ever disagrees with the per-column verdicts we trust those (they name the
    columns) and log the mismatch.
    """
    drifted = [name for name, score in scores.items() if score["drifted"]]
    share = len(drifted) / len(scores)
    evidently_only = not any(s["stattest"] == ALL_MISSING for s in scores.values())
    if counted is not None and evidently_only and counted[0] != len(drifted):
        log.warning("event=drift_count_mismatch evidently=%d columns=%d", counted[0], len(drifted))
    return DriftResult(
        detected=share >= drift_share,
        share=share,
        columns=drifted,
        scores=scores,
        reference_rows=reference_rows,
        current_rows=current_rows,
    )


def champion_metric(spec: DomainSpec, model, frame: pd.DataFrame) -> float | None:
    """The spec's primary metric of `model` on the labelled rows of `frame`, or None.

    None means "no evidence": the batch has no label column, no labelled row, or the
    metric is undefined on it (roc_auc on a batch with one class). Rows whose label
    is missing are left out rather than failing the batch, since labels often arrive late.
    """
    from continuum import metrics

    target = spec.data.target
    if target not in frame.columns:
        return None
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        return None
    value = metrics.evaluate(spec, model, labelled)[spec.monitoring.primary_metric]
    return None if value is None or math.isnan(value) else float(value)


def below_floor(spec: DomainSpec, value: float | None) -> bool:
    """True when `value` is worse than `monitoring.floor` (above it for lower-is-better metrics like brier).

    No value (an unlabelled batch) is never below the floor: absence of labels is not a regression.
    """
    from continuum import metrics

    if value is None or math.isnan(value):
        return False
    floor = spec.monitoring.floor
    if metrics.higher_is_better(spec.monitoring.primary_metric):
        return value < floor
    return value > floor
