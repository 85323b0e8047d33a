"""Per-prediction reason codes: which inputs moved one row's score, and which way.

A premium or a fraud flag must be explainable to the customer and the regulator, so
batch scoring writes `reason_1`..`reason_N` next to each score, e.g.
`prior_claims=4 (+0.121)`: the feature, the row's value, and how much that value moved
the positive-class probability against a typical value.

Method: prediction difference (Robnik-Šikonja and Kononenko, "Explaining classifications
for individual instances", IEEE TKDE 2008). A feature's contribution to a row's score is
the score minus the score of the same row with only that feature set to its typical value:
the median of the champion's training sample for numbers, its most frequent value for
categories and booleans. Reasons are the largest contributions by size; a contribution that
rounds to 0.000 is no reason. It asks nothing of the model but `predict_proba` on the raw
input features (the pipeline's own preprocessing runs), so it explains any estimator a spec
names, in the probability units a person reads. It is one feature at a time: two features
that only matter together share no credit, which Shapley values would give them.

Why not shap (measured on this 2-core machine, 10k rows, one thread, shap 0.51 installed
cleanly next to the lock): TreeExplainer supports the shipped HistGradientBoosting through
the pipeline only on the encoded matrix (one-hot columns summed back per input), in log-odds;
it took 3.3 s CPU (claims, 200 trees) and 1.3 s (fraud), plus 6.2 s to import shap and numba;
probabilities need its interventional mode, 12 s per 1k rows. This method took 0.5-0.6 s per
10k rows for both domains, explains any estimator, and adds no dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from continuum.specs import DomainSpec

DECIMALS = 3  # contributions are written to 3 decimals; smaller ones are not reasons


def columns(n: int) -> list[str]:
    """The reason columns of a scores frame: reason_1 .. reason_n."""
    return [f"reason_{i}" for i in range(1, n + 1)]


def typical_values(spec: DomainSpec, reference: pd.DataFrame, names: list[str] | None = None) -> dict[str, Any]:
    """Each input feature's typical value in `reference` (a version's training sample): median or mode.

    `names`: the model's input columns (`training.model_inputs`); default the contract's features.
    """
    from continuum import training

    inputs = training.features(spec, reference) if names is None else reference[names]
    found: dict[str, Any] = {}
    for name, values in inputs.items():
        present = values.dropna()
        if present.empty:
            found[name] = None  # never seen: the pipeline's imputer fills it, as for any missing value
        elif spec.data.column(name).type in ("int", "float"):
            found[name] = float(present.median())
        else:
            found[name] = present.mode().iloc[0]
    return found


def contributions(
    features: pd.DataFrame, score: Callable[[pd.DataFrame], np.ndarray], typical: dict[str, Any]
) -> np.ndarray:
    """(rows, features) score change of each row when each feature alone is set to its typical value.

    `score` maps a features frame to positive-class probabilities; it is called once for the
    frame and once per feature (cost: features + 1 predictions of the batch).
    """
    import numpy as np

    base = np.asarray(score(features), dtype="float64")
    out = np.empty((len(features), features.shape[1]), dtype="float64")
    for j, name in enumerate(features.columns):
        replaced = features.copy(deep=False)
        replaced[name] = _fill(features[name], typical.get(name))
        out[:, j] = base - np.asarray(score(replaced), dtype="float64")
    return out


def _fill(values: pd.Series, value: Any) -> pd.Series:
    """`values` all set to `value`: numbers as float (a median may fall between two ints), a category
    column keeping its categories (the pipeline's one-hot reads them), anything else in its own dtype."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical([value] * len(values), categories=dtype.categories), index=values.index)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return pd.Series(np.nan if value is None else float(value), index=values.index, dtype="float64")
    return pd.Series(value, index=values.index, dtype=dtype if value is not None else object)


def _render(value: Any) -> str:
    """A feature value as a person reads it: 22, 1.25e+04, collision, true, missing."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "missing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def reason_codes(features: pd.DataFrame, contribution: np.ndarray, n: int) -> pd.DataFrame:
    """The `n` largest contributions per row as `feature=value (+0.123)`, or None where fewer moved the score."""
    import numpy as np
    import pandas as pd

    rounded = np.round(contribution, DECIMALS)
    order = np.argsort(-np.abs(rounded), axis=1, kind="stable")[:, :n]
    names = list(features.columns)
    values = [features[name].to_numpy(dtype=object) for name in names]
    out: dict[str, list[str | None]] = {}
    for k, column in enumerate(columns(n)):
        if k >= len(names):
            out[column] = [None] * len(features)
            continue
        picked = order[:, k]
        out[column] = [
            None if rounded[i, j] == 0 else f"{names[j]}={_render(values[j][i])} ({rounded[i, j]:+.{DECIMALS}f})"
            for i, j in enumerate(picked.tolist())
        ]
    return pd.DataFrame(out, index=features.index)
