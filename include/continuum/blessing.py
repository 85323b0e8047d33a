"""Blessing: may a challenger replace the champion?

TFX Evaluator's two thresholds plus a segment check, all on the spec's primary
metric: the *value* threshold (`blessing.min_value`, default `monitoring.floor`),
the *change* threshold (no worse than the champion by more than
`blessing.max_degradation`), and no segment of `blessing.segment_column` with
enough rows below the floor, so a model cannot buy its average with one region.
For lower-is-better metrics (brier, log_loss) the floor is a ceiling. The spec's
`blessing.fairness` gates bound fairness measures over the groups of its protected
columns (`continuum.fairness`); a broken one refuses the challenger, naming the
column, the groups and by how much.

Both models are scored on the same holdout frame (`compare_on_holdout`), because
comparing metrics computed on different data compares the data, not the models.
The simple models of `baselines.reference_models` (class prior, logistic regression),
trained on the challenger's window, are scored on that holdout too: the challenger
must beat the best of them by `blessing.min_gain_over_baseline` (null: recorded only).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from continuum import fairness as fairness_gates
from continuum import metrics

if TYPE_CHECKING:
    import pandas as pd

    from continuum.specs import DomainSpec

# Metrics are floats: 0.90 - 0.89 is 0.0100000001, which must still pass a 0.01 threshold.
_TOLERANCE = 1e-9


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _worse(value: float, limit: float, higher_better: bool) -> bool:
    return value < limit - _TOLERANCE if higher_better else value > limit + _TOLERANCE


def _usable(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def _floor_reason(name: str, value: float, floor: float, higher_better: bool) -> str | None:
    if not _worse(value, floor, higher_better):
        return None
    return f"{name} {_fmt(value)} {'below floor' if higher_better else 'above ceiling'} {_fmt(floor)}"


def _segment_reasons(
    spec: DomainSpec,
    segments: dict[Any, dict[str, float]],
    rows: dict[Any, int],
) -> list[str]:
    """One reason per segment big enough to judge whose primary metric misses the floor.

    Row counts come from `rows` or from the segment's own `rows` entry
    (`metrics.evaluate_segments` adds one); a segment with no count is judged.
    A metric undefined on a segment (NaN, e.g. roc_auc with one class) is not judged.
    """
    name = spec.monitoring.primary_metric
    higher_better = metrics.higher_is_better(name)
    column = spec.blessing.segment_column
    reasons = []
    for segment, values in segments.items():
        count = rows.get(segment, rows.get(str(segment), values.get("rows")))
        if count is not None and count < spec.blessing.min_segment_rows:
            continue
        value = values.get(name)
        if not _usable(value):
            continue
        reason = _floor_reason(name, value, spec.bless_floor, higher_better)
        if reason:
            label = f"{column}={segment}" if column else str(segment)
            reasons.append(f"segment {label} {reason}")
    return reasons


def best_baseline(
    spec: DomainSpec, challenger: dict[str, float], baselines: dict[str, dict[str, float]]
) -> tuple[str | None, float | None]:
    """(the baseline best on the primary metric, the challenger's gain over it); gain > 0 is better,
    whatever the metric's direction. (None, None) when no baseline has a usable value."""
    name = spec.monitoring.primary_metric
    sign = 1.0 if metrics.higher_is_better(name) else -1.0
    usable = {b: values[name] for b, values in baselines.items() if _usable(values.get(name))}
    if not usable:
        return None, None
    best = max(usable, key=lambda b: sign * usable[b])
    value = challenger.get(name)
    return best, (sign * (value - usable[best]) if _usable(value) else None)


def _baseline_reason(spec: DomainSpec, challenger: dict[str, float], baselines: dict[str, dict[str, float]]) -> str | None:
    required = spec.blessing.min_gain_over_baseline
    best, gain = best_baseline(spec, challenger, baselines)
    if required is None or best is None or gain is None or gain >= required - _TOLERANCE:
        return None
    name = spec.monitoring.primary_metric
    return (
        f"{name} {_fmt(challenger[name])} does not beat baseline {best} {_fmt(baselines[best][name])}"
        f" by blessing.min_gain_over_baseline {_fmt(required)} (gain {_fmt(gain)})"
    )


def bless(
    spec: DomainSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    challenger_segments: dict[Any, dict[str, float]] | None = None,
    segment_rows: dict[Any, int] | None = None,
    baselines: dict[str, dict[str, float]] | None = None,
    fairness: dict[str, Any] | None = None,
) -> tuple[bool, list[str]]:
    """(blessed, reasons): blessed when no threshold fails; each reason names metric, values, segment.

    Without a champion (or a champion without the metric) only the value, segment
    and fairness thresholds apply; without `baselines` (name -> holdout metrics of the
    simple models) the baseline threshold does not. `fairness` is the challenger's
    `fairness.report` on the holdout; the spec's `blessing.fairness` gates are judged on it.
    """
    name = spec.monitoring.primary_metric
    higher_better = metrics.higher_is_better(name)
    value = challenger.get(name)
    if not _usable(value):
        return False, [f"challenger has no usable {name} (got {value!r}); check monitoring.primary_metric"]

    reasons = []
    floor_reason = _floor_reason(name, value, spec.bless_floor, higher_better)
    if floor_reason:
        reasons.append(floor_reason)
    reference = (champion or {}).get(name)
    if _usable(reference):
        allowed = spec.blessing.max_degradation
        limit = reference - allowed if higher_better else reference + allowed
        if _worse(value, limit, higher_better):
            reasons.append(
                f"{name} {_fmt(value)} worse than champion {_fmt(reference)} by more than {_fmt(allowed)}"
            )
    if challenger_segments:
        reasons += _segment_reasons(spec, challenger_segments, segment_rows or {})
    baseline_reason = _baseline_reason(spec, challenger, baselines or {})
    if baseline_reason:
        reasons.append(baseline_reason)
    if spec.blessing.fairness:
        reasons += fairness_gates.reasons(fairness_gates.judge(spec, fairness))
    return not reasons, reasons


def compare_on_holdout(
    spec: DomainSpec, challenger_model, champion_model, holdout: pd.DataFrame
) -> dict[str, Any]:
    """Both models' metrics, the challenger's segments and its fairness report on one holdout frame.

    The keys are `bless`'s arguments, so the DAG can call `bless(spec, **comparison)`.
    Segment keys become strings so the result travels as an XCom (JSON).
    """
    comparison: dict[str, Any] = {
        "challenger": metrics.evaluate(spec, challenger_model, holdout),
        "champion": metrics.evaluate(spec, champion_model, holdout) if champion_model is not None else None,
        "challenger_segments": None,
        "segment_rows": None,
        "fairness": fairness_gates.evaluate(spec, challenger_model, holdout),
    }
    column = spec.blessing.segment_column
    if column is not None:
        segments = metrics.evaluate_segments(spec, challenger_model, holdout, column)
        comparison["challenger_segments"] = {
            str(key): {k: v for k, v in values.items() if k != "rows"} for key, values in segments.items()
        }
        comparison["segment_rows"] = {str(key): int(values["rows"]) for key, values in segments.items()}
    return comparison
