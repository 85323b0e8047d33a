"""Fairness on the holdout: how the model treats the groups of each protected column.

For every column marked `protected: true` (kept out of the model's inputs), fairlearn's
`MetricFrame` gives per group: rows, positive rate (observed), mean score, selection
rate, true and false positive rates, the spec's primary metric and, for a premium
domain, the mean risk factor. Its `ratio()` and `difference()` (between groups) give the
measures a spec may bound in `blessing.fairness`: `demographic_parity_*` (selection rate),
`equal_opportunity_*` (TPR), `equalized_odds_*` (the worse of TPR and FPR),
`primary_metric_*` and `mean_risk_factor_*`.

"Selected" is the decision a score leads to: a surcharge (risk factor above 1) for a
premium domain, else a score at or above `scoring.threshold` (default 0.5, the threshold
the metrics use). Rates that a group cannot have (TPR without positives, FPR without
negatives) are null, not 0, so a small group with no claims does not read as unfair.

The gate (`judge`) works on the report alone, over the groups with at least the gate's
`min_group_rows`, so the logged `fairness.json` is enough to re-judge a version.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from continuum import metrics

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from continuum.specs import DomainSpec, FairnessGate

MISSING_GROUP = "(missing)"
# Which per-group values a gated measure compares (equalized odds takes the worse of two).
COMPONENTS = {
    "demographic_parity": ("selection_rate",),
    "equal_opportunity": ("true_positive_rate",),
    "equalized_odds": ("true_positive_rate", "false_positive_rate"),
    "primary_metric": (None,),  # the spec's primary metric, named at run time
    "mean_risk_factor": ("mean_risk_factor",),
}


def selection_rule(spec: DomainSpec) -> str:
    """What "selected" means for this domain, in words (the card prints it)."""
    if spec.scoring.kind == "premium":
        return "a surcharge: risk factor above 1"
    return f"a score of at least {threshold(spec):g} (scoring.threshold)"


def threshold(spec: DomainSpec) -> float:
    return float((spec.scoring.model_extra or {}).get("threshold", 0.5))


def _nan_unless(condition: bool, value: float) -> float:
    return float(value) if condition else math.nan


def _group_metrics(spec: DomainSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics of hard decisions, metrics of scores) for MetricFrame, each f(y_true, y_pred)."""
    import numpy as np
    from fairlearn.metrics import count, false_positive_rate, selection_rate, true_positive_rate

    primary = spec.monitoring.primary_metric
    params = dict(spec.monitoring.metric_params or {})
    decided = {
        "rows": count,
        "selection_rate": selection_rate,
        "true_positive_rate": lambda y, p: _nan_unless(bool(np.any(y == 1)), true_positive_rate(y, p)),
        "false_positive_rate": lambda y, p: _nan_unless(bool(np.any(y == 0)), false_positive_rate(y, p)),
    }
    scored = {
        "positive_rate": lambda y, s: float(np.mean(y)),
        "mean_score": lambda y, s: float(np.mean(s)),
        primary: lambda y, s: metrics.compute(primary, y, s, **params),
    }
    return decided, scored


def _groups(values: pd.Series) -> np.ndarray:
    return values.astype(object).where(values.notna(), MISSING_GROUP).astype(str).to_numpy()


def column_report(
    spec: DomainSpec,
    y_true,
    scores,
    groups: pd.Series,
    risk_factor=None,
) -> dict[str, Any]:
    """Per-group table and between-group measures of one protected column.

    `y_true` is 1 for the positive label, `scores` the positive-class probabilities,
    `groups` the column's values (row-aligned), `risk_factor` the premium factors (or None).
    """
    import numpy as np
    from fairlearn.metrics import MetricFrame

    y = np.asarray(y_true).astype("int64")
    s = np.asarray(scores, dtype="float64")
    rf = None if risk_factor is None else np.asarray(risk_factor, dtype="float64")
    selected = (rf > 1.0) if rf is not None else (s >= threshold(spec))
    sensitive = _groups(groups)
    decided, scored = _group_metrics(spec)
    frames = [
        MetricFrame(metrics=decided, y_true=y, y_pred=selected.astype("int64"), sensitive_features=sensitive),
        MetricFrame(metrics=scored, y_true=y, y_pred=s, sensitive_features=sensitive),
    ]
    if rf is not None:
        frames.append(
            MetricFrame(
                metrics={"mean_risk_factor": lambda _y, r: float(np.mean(r))},
                y_true=y,
                y_pred=rf,
                sensitive_features=sensitive,
            )
        )
    table: dict[str, dict[str, float]] = {}
    for frame in frames:
        for group, row in frame.by_group.to_dict(orient="index").items():
            table.setdefault(str(group), {}).update({k: _clean(v) for k, v in row.items()})
    for row in table.values():
        row["rows"] = int(row["rows"])
    return {"groups": table, "measures": _measures(spec, table, min_rows=1)}


def _clean(value: Any) -> float | None:
    """A finite float, or None (JSON null) for a value a group cannot have."""
    value = float(value)
    return value if math.isfinite(value) else None


def _component_names(spec: DomainSpec, measure: str) -> tuple[str, ...]:
    return tuple(spec.monitoring.primary_metric if c is None else c for c in COMPONENTS[measure])


def _between(table: dict[str, dict[str, float]], component: str, min_rows: int) -> dict[str, Any] | None:
    """fairlearn's between-groups ratio (min/max) and difference (max-min) of `component`, over the
    groups with `min_rows` rows and a defined value; None when fewer than two groups are left.

    Computed on the report's table rather than by a new MetricFrame, so a logged report can
    be judged again; with every group kept it equals MetricFrame.ratio()/difference().
    """
    values = {
        g: row[component]
        for g, row in table.items()
        if row.get("rows", 0) >= min_rows and row.get(component) is not None
    }
    if len(values) < 2:
        return None
    low = min(values, key=values.__getitem__)
    high = max(values, key=values.__getitem__)
    lo, hi = values[low], values[high]
    return {
        "component": component,
        "ratio": lo / hi if hi > 0 else math.nan,  # 0/0 (no group selected at all) is undefined, as in fairlearn
        "difference": hi - lo,
        "low": (low, lo),
        "high": (high, hi),
        "groups": sorted(values),
    }


def _measure(spec: DomainSpec, table, metric: str, min_rows: int) -> dict[str, Any] | None:
    """The value of `metric` (e.g. equalized_odds_ratio) with the component and groups that set it."""
    measure, _, kind = metric.rpartition("_")
    if measure not in COMPONENTS:
        raise ValueError(f"unknown fairness metric '{metric}'")
    parts = [p for c in _component_names(spec, measure) if (p := _between(table, c, min_rows)) is not None]
    parts = [p for p in parts if not math.isnan(p[kind])]
    if not parts:
        return None
    # Worst case over the components, as fairlearn's equalized_odds_* (agg="worst_case").
    worst = min(parts, key=lambda p: p["ratio"]) if kind == "ratio" else max(parts, key=lambda p: p["difference"])
    return {**worst, "value": worst[kind]}


def _measures(spec: DomainSpec, table, min_rows: int) -> dict[str, float | None]:
    from continuum.specs import FAIRNESS_METRICS

    has_risk = any("mean_risk_factor" in row for row in table.values())
    result = {}
    for metric in FAIRNESS_METRICS:
        if metric.startswith("mean_risk_factor") and not has_risk:
            continue
        found = _measure(spec, table, metric, min_rows)
        result[metric] = None if found is None else found["value"]
    return result


def report(spec: DomainSpec, frame: pd.DataFrame, scores, risk_factor=None) -> dict[str, Any]:
    """The fairness report of scored, labelled rows: one `column_report` per protected column."""
    target = spec.data.target
    y = (frame[target] == spec.data.positive_label).to_numpy()
    columns = {}
    for column in spec.data.protected_columns:
        if column.name not in frame.columns:
            raise ValueError(f"{spec.name}: the holdout lacks protected column '{column.name}' (data.columns)")
        columns[column.name] = column_report(spec, y, scores, frame[column.name], risk_factor)
    return {"selected": selection_rule(spec), "rows": int(len(frame)), "columns": columns}


def evaluate(spec: DomainSpec, model, frame: pd.DataFrame) -> dict[str, Any] | None:
    """`report` of `model` on a labelled frame (the holdout); None when the spec has no protected column."""
    if not spec.data.protected_columns:
        return None
    from continuum import scoring

    scores = metrics.positive_scores(spec, model, frame)
    risk = scoring.risk_factors(spec, model, frame) if spec.scoring.kind == "premium" else None
    return report(spec, frame, scores, risk)


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _gate_result(spec: DomainSpec, gate: FairnessGate, column: str, table) -> dict[str, Any]:
    found = _measure(spec, table, gate.metric, gate.min_group_rows)
    result: dict[str, Any] = {
        "metric": gate.metric,
        "column": column,
        "min": gate.min,
        "max": gate.max,
        "min_group_rows": gate.min_group_rows,
        "value": None,
        "passed": True,
        "reason": None,
    }
    if found is None:
        result["note"] = f"not judged: fewer than two groups of {column} with {gate.min_group_rows}+ rows and a value"
        return result
    value = found["value"]
    (low, lo), (high, hi) = found["low"], found["high"]
    result.update(value=value, groups=found["groups"], low={low: lo}, high={high: hi})
    if gate.min is not None and value < gate.min - 1e-9:
        broken = f"below min {_fmt(gate.min)} by {_fmt(gate.min - value)}"
    elif gate.max is not None and value > gate.max + 1e-9:
        broken = f"above max {_fmt(gate.max)} by {_fmt(value - gate.max)}"
    else:
        return result
    result["passed"] = False
    result["reason"] = (
        f"fairness {gate.metric} on {column} {_fmt(value)} {broken}: {found['component']} "
        f"{_fmt(lo)} for {column}={low} vs {_fmt(hi)} for {column}={high}"
    )
    return result


def judge(spec: DomainSpec, fairness: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every `blessing.fairness` gate on every column it applies to, judged on `fairness` (a `report`)."""
    results = []
    columns = (fairness or {}).get("columns", {})
    for gate in spec.blessing.fairness:
        for column in [gate.column] if gate.column else [c.name for c in spec.data.protected_columns]:
            if column not in columns:
                raise ValueError(f"{spec.name}: no fairness report for protected column '{column}'; evaluate it first")
            results.append(_gate_result(spec, gate, column, columns[column]["groups"]))
    return results


def reasons(results: list[dict[str, Any]]) -> list[str]:
    """The `why_not` lines of the gates that failed."""
    return [r["reason"] for r in results if not r["passed"]]
