"""The logistic probe domain that several tests declare for themselves: one spec builder, one row maker.

Two float features and a 0/1 label that follows a logistic model of them, so a logistic
regression is calibrated on it (what the CBPE estimate and the late-labels tests need).
A change to the spec format is made here once, not in every copy.
"""

from __future__ import annotations

from typing import Any

ID, TARGET = "row_id", "y"


def spec(
    name: str,
    description: str,
    *,
    schedule: str = "@weekly",
    monitoring: dict[str, Any] | None = None,
    extra_columns: tuple[dict[str, Any], ...] = (),
    **sections: Any,
) -> dict[str, Any]:
    """A domain document (as its YAML file holds it); `sections` add or replace top-level sections."""
    return {
        "name": name,
        "description": description,
        "owner": "probe-team",
        "schedule": schedule,
        "data": {
            "format": "csv",
            "target": TARGET,
            "positive_label": 1,
            "id_column": ID,
            "columns": [
                {"name": ID, "type": "string"},
                {"name": "x1", "type": "float"},
                {"name": "x2", "type": "float"},
                *extra_columns,
                {"name": TARGET, "type": "int", "allowed": [0, 1]},
            ],
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
        "monitoring": {"primary_metric": "accuracy", "floor": 0.6, **(monitoring or {})},
        "scoring": {"kind": "probability"},
        **sections,
    }


def rows(n: int, seed: int, *, start: int = 0, spread: float = 1.0, id_prefix: str = "r"):
    """`n` labelled rows; `spread` < 1 moves them toward the decision boundary (a covariate shift)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, spread, n), rng.normal(0, spread, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(3 * x1 - 2 * x2)))).astype(int)
    return pd.DataFrame({ID: [f"{id_prefix}{start + i:06d}" for i in range(n)], "x1": x1, "x2": x2, TARGET: y})
