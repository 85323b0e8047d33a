"""Batch scoring: what a domain's champion writes for each batch, by `scoring.kind`.

| kind            | columns                                                  |
|-----------------|----------------------------------------------------------|
| probability     | <id>, probability                                        |
| premium         | <id>, claim_probability, risk_factor, premium            |
| fraud           | <id>, fraud_score, flag                                  |
| recommendations | user, rank, item, score (top `k` items per user)         |

`<id>` is `data.id_column`, or the frame's index (column `index`) when the
frame has no id. Only the columns the model was trained on reach it
(`training.model_inputs`), so an extra column in a batch, or one a newer spec
added, never changes a score. Premium and fraud scores also carry
`reason_1`..`reason_3` (`scoring.reason_codes`; see `continuum.reasons`).
`smoke_test` runs before a promoted model scores anything: a model that cannot
score a sample must not write a batch of garbage; `check_scores` then refuses a
batch whose scores are NaN, infinite or outside their kind's range, and
`summarize` is what the decision record keeps of their distribution.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from continuum import training

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from continuum.decision import ScoreSummary
    from continuum.specs import DomainSpec

RISK_FACTOR_BOUNDS = (0.5, 3.0)  # no policy pays less than half or more than three times the base
# The column of the scores that holds the champion's positive-class probability, per kind, next to
# the id. `recommendations` keeps only the top k rows per user (no id): whoever needs every row's
# probability re-scores the validated batch with the version that scored it (`continuum.labels`).
PROBABILITY_COLUMNS = {"probability": "probability", "premium": "claim_probability", "fraud": "fraud_score"}
# The valid range of every score column, per kind: (low, high, low_is_exclusive).
SCORE_RANGES: dict[str, dict[str, tuple[float, float, bool]]] = {
    "probability": {"probability": (0.0, 1.0, False)},
    "premium": {
        "claim_probability": (0.0, 1.0, False),
        "risk_factor": (*RISK_FACTOR_BOUNDS, False),
        "premium": (0.0, math.inf, True),  # nobody is insured for nothing
    },
    "fraud": {"fraud_score": (0.0, 1.0, False)},
    "recommendations": {"score": (0.0, 1.0, False)},
}
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


class SmokeTestFailed(RuntimeError):
    """The model cannot produce valid probabilities on a sample of real rows."""


class ScoreCheckFailed(RuntimeError):
    """A batch's scores are NaN, infinite or out of range: they are not written, the task fails and alerts."""


def _positive_column(spec: DomainSpec, model, width: int) -> int:
    """Index of the positive label's column in predict_proba's output."""
    classes = list(getattr(model, "classes_", []))
    label = spec.data.positive_label
    if classes:
        if label not in classes:
            raise ValueError(
                f"{spec.name}: positive_label {label!r} (data.positive_label) is not a model class: {classes}"
            )
        return classes.index(label)
    return width - 1


def probabilities(spec: DomainSpec, model, frame: pd.DataFrame) -> np.ndarray:
    """The model's probability of the positive label for each row of `frame` (exactly the columns it was trained on)."""
    return _positive(spec, model, training.model_inputs(spec, model, frame))


def smoke_test(spec: DomainSpec, model, sample: pd.DataFrame) -> None:
    """Raise SmokeTestFailed unless `model` gives one finite probability in [0, 1] per class and row."""
    import numpy as np

    where = f"{spec.name}: smoke test on {len(sample)} rows"
    if sample.empty:
        raise SmokeTestFailed(f"{where}: the sample has no rows; pass rows of a validated batch")
    try:
        proba = np.asarray(model.predict_proba(training.model_inputs(spec, model, sample)), dtype="float64")
    except Exception as exc:  # any failure of a user's model is the finding, not a crash
        raise SmokeTestFailed(f"{where}: predict_proba failed ({type(exc).__name__}: {exc})") from exc
    classes = getattr(model, "classes_", None)
    width = len(classes) if classes is not None else None
    rows_ok = proba.ndim == 2 and proba.shape[0] == len(sample)
    if not rows_ok or proba.shape[1] < 2 or (width is not None and proba.shape[1] != width):
        expected = f"({len(sample)}, {width or 'n_classes'})"
        raise SmokeTestFailed(f"{where}: predict_proba returned shape {proba.shape}, expected {expected}")
    if np.isnan(proba).any():
        raise SmokeTestFailed(
            f"{where}: predict_proba returned NaN for {int(np.isnan(proba).any(axis=1).sum())} rows"
        )
    if ((proba < 0) | (proba > 1)).any():
        raise SmokeTestFailed(
            f"{where}: probabilities outside [0, 1] (min {proba.min():.4g}, max {proba.max():.4g})"
        )


def _ids(spec: DomainSpec, frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    column = spec.data.id_column
    if column and column in frame.columns:
        return pd.DataFrame({column: frame[column].to_numpy()})
    return pd.DataFrame({column or "index": frame.index.to_numpy()})


def _extra(spec: DomainSpec) -> dict[str, Any]:
    return dict(spec.scoring.model_extra or {})


def _premium(spec: DomainSpec, p: np.ndarray, out: pd.DataFrame) -> pd.DataFrame:
    """premium = base_premium x risk factor; risk factor = p / base rate, clipped.

    The base rate is `scoring.base_rate` (the portfolio's claim rate) when the spec
    sets it, else the batch's mean probability, so a batch's average risk factor is
    about 1.
    """
    import numpy as np

    extra = _extra(spec)
    if extra.get("base_premium") is None:
        raise ValueError(f"{spec.name}: scoring.kind premium needs scoring.base_premium; add it to the spec")
    base_premium = float(extra["base_premium"])
    base_rate = float(extra["base_rate"]) if extra.get("base_rate") is not None else float(p.mean())
    if not base_rate > 0:
        raise ValueError(f"{spec.name}: base rate {base_rate} must be positive; set scoring.base_rate")
    risk = np.clip(p / base_rate, *RISK_FACTOR_BOUNDS)
    return out.assign(claim_probability=p, risk_factor=risk, premium=np.round(base_premium * risk, 2))


def _recommendations(spec: DomainSpec, p: np.ndarray, frame: pd.DataFrame) -> pd.DataFrame:
    """Top `k` items per user; the frame holds one row per (user, candidate item)."""
    import pandas as pd

    k, user, item = spec.scoring.ranking
    missing = [c for c in (user, item) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{spec.name}: recommendations need column(s) {missing}; set scoring.user_column/item_column"
        )
    ranked = pd.DataFrame(
        {"user": frame[user].to_numpy(), "item": frame[item].to_numpy(), "score": p}
    ).sort_values(["user", "score", "item"], ascending=[True, False, True], kind="stable")
    ranked["rank"] = ranked.groupby("user").cumcount() + 1
    top = ranked[ranked["rank"] <= k]
    return top[["user", "rank", "item", "score"]].reset_index(drop=True)


def score(spec: DomainSpec, model, frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The scores of `frame` by `spec.scoring.kind` (see the module table); `frame` is not changed.

    Reason codes (when the spec asks for them) need `reference`, the champion's training
    sample (`Keys.reference(version)`): its medians and modes are the typical values.
    """
    if frame.empty:
        raise ValueError(f"{spec.name}: nothing to score, the frame has no rows")
    p = probabilities(spec, model, frame)
    kind = spec.scoring.kind
    if kind == "recommendations":
        return _recommendations(spec, p, frame)
    out = _ids(spec, frame)
    if kind == "probability":
        out = out.assign(probability=p)
    elif kind == "premium":
        out = _premium(spec, p, out)
    elif kind == "fraud":
        threshold = float(_extra(spec).get("threshold", 0.5))
        out = out.assign(fraud_score=p, flag=p >= threshold)
    else:  # pragma: no cover - specs forbid it
        raise ValueError(f"{spec.name}: unknown scoring.kind '{kind}'")
    if spec.scoring.reasons:
        out = out.join(reason_columns(spec, model, frame, reference).reset_index(drop=True))
    return out


def risk_factors(spec: DomainSpec, model, frame: pd.DataFrame) -> np.ndarray:
    """The premium kind's risk factor of each row, as `score` prices it (no reason codes: those need the champion's sample)."""
    return _premium(spec, probabilities(spec, model, frame), _ids(spec, frame))["risk_factor"].to_numpy()


def reason_columns(
    spec: DomainSpec, model, frame: pd.DataFrame, reference: pd.DataFrame | None, n: int | None = None
) -> pd.DataFrame:
    """`reason_1`..`reason_n` of each row of `frame` (n: the spec's `scoring.reasons`, else 3)."""
    from continuum import reasons

    if reference is None:
        raise ValueError(
            f"{spec.name}: reason codes need the champion's training sample (models/<domain>/<version>/reference.parquet)"
        )
    features = training.model_inputs(spec, model, frame)  # the champion's own columns, as it scores
    typical = reasons.typical_values(spec, reference, list(features.columns))
    contribution = reasons.contributions(features, lambda x: _positive(spec, model, x), typical)
    return reasons.reason_codes(features, contribution, n or spec.scoring.reasons or 3)


def _positive(spec: DomainSpec, model, features: pd.DataFrame) -> np.ndarray:
    proba = model.predict_proba(features)
    return proba[:, _positive_column(spec, model, proba.shape[1])]


def check_scores(spec: DomainSpec, scores: pd.DataFrame, where: str = "") -> None:
    """Raise ScoreCheckFailed naming every score column with NaN, inf or a value outside its kind's range."""
    import numpy as np

    problems = []
    for column, (low, high, exclusive) in SCORE_RANGES[spec.scoring.kind].items():
        if column not in scores.columns:
            problems.append(f"{column} is missing")
            continue
        values = scores[column].to_numpy(dtype="float64")
        bad = int((~np.isfinite(values)).sum())
        if bad:
            problems.append(f"{column} has {bad} NaN or inf")
        finite = values[np.isfinite(values)]
        outside = finite[(finite <= low if exclusive else finite < low) | (finite > high)]
        if outside.size:
            span = f"{'(' if exclusive else '['}{low:g}, {high:g}]"
            problems.append(f"{column} has {outside.size} values outside {span}, e.g. {outside[0]:.4g}")
    if problems:
        raise ScoreCheckFailed(
            f"{spec.name}{where}: scores not written, {len(scores)} rows fail their checks: {'; '.join(problems)}."
            " See docs/runbook.md#score-check-failed"
        )


def summarize(spec: DomainSpec, scores: pd.DataFrame) -> ScoreSummary:
    """Mean and quantiles of each score column (checked first), and the share flagged for fraud."""
    from continuum.decision import ScoreSummary

    columns = {}
    for column in SCORE_RANGES[spec.scoring.kind]:
        values = scores[column].astype("float64")
        quantiles = values.quantile(list(QUANTILES))
        columns[column] = {"mean": float(values.mean())} | {
            f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)
        }
    flagged = float(scores["flag"].mean()) if "flag" in scores.columns else None
    return ScoreSummary(rows=len(scores), columns=columns, flagged=flagged)


def shadow_check(
    spec: DomainSpec, challenger, champion, frame: pd.DataFrame
) -> tuple[list[str], float | None]:
    """Why `challenger` must not serve yet, judged by scoring `frame` (empty list: it may), and its score shift.

    Refused when it cannot score, gives a non-finite or out-of-range probability, or
    moves the positive-class probability of the same rows by more than
    `blessing.max_score_shift` on average against `champion` (mean absolute change;
    None turns that part off, and there is nothing to compare without a champion).
    """
    import numpy as np

    limit = spec.blessing.max_score_shift
    try:
        new = np.asarray(probabilities(spec, challenger, frame), dtype="float64")
    except Exception as exc:  # any failure of the candidate is the finding, not a crash
        return [f"challenger cannot score the batch ({type(exc).__name__}: {exc})"], None
    bad = int((~np.isfinite(new)).sum())
    if bad:
        return [f"challenger gave {bad} non-finite score(s) (NaN or inf) on {len(new)} rows"], None
    if ((new < 0) | (new > 1)).any():
        return [f"challenger scores outside [0, 1] (min {new.min():.4g}, max {new.max():.4g})"], None
    if champion is None:
        return [], None
    old = np.asarray(probabilities(spec, champion, frame), dtype="float64")
    shift = float(np.mean(np.abs(new - old)))
    if limit is not None and shift > limit:
        return [f"score shift {shift:.4g} vs the champion on the same rows exceeds blessing.max_score_shift {limit:.4g}"], shift
    return [], shift
