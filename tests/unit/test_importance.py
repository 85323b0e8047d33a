"""Permutation importance on the holdout: a column the model does not use is flagged, seeded and bounded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from continuum import importance, training
from continuum.specs import DomainSpec


def _spec() -> DomainSpec:
    return DomainSpec.model_validate(
        {
            "name": "importance_test",
            "description": "test",
            "owner": "tests",
            "data": {
                "target": "label",
                "columns": [
                    {"name": "signal", "type": "float"},
                    {"name": "noise", "type": "float"},
                    {"name": "colour", "type": "category"},
                    {"name": "label", "type": "int", "allowed": [0, 1]},
                ],
            },
            # A tree stops at the first pure split, so it never uses what does not help.
            "model": {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {}},  # random_state comes from training.seed
            "training": {"seed": 7},
        }
    )


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 1, n)
    return pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(0, 1, n),
            "colour": rng.choice(["red", "blue"], n),
            "label": (signal > 0).astype(int),
        }
    )


def test_a_noise_feature_is_flagged_and_the_signal_is_not():
    spec = _spec()
    model = training.fit(spec, _frame(300, 1))
    result = importance.permutation(spec, model, _frame(800, 2), rows=200, repeats=3)
    assert result["rows"] == 200 and result["repeats"] == 3 and result["seed"] == 7 and result["score"] == "brier"
    assert next(iter(result["features"])) == "signal"  # most important first
    assert result["features"]["signal"]["mean"] > 0.3  # shuffling it makes the Brier score much worse
    assert result["features"]["noise"]["mean"] == 0.0 and result["features"]["colour"]["mean"] == 0.0
    flags = importance.flags(result)
    assert [f.split()[1] for f in flags] == ["noise", "colour"]
    assert "permutation importance 0 <= 0 on the holdout (brier, 200 rows)" in flags[0]
    assert importance.as_metrics(result)["importance.signal"] == result["features"]["signal"]["mean"]
    # Seeded: the same sample and shuffles again.
    assert importance.permutation(spec, model, _frame(800, 2), rows=200, repeats=3) == result


def test_nothing_is_flagged_without_an_importance():
    assert importance.flags(None) == [] and importance.flags({}) == []


def test_a_run_without_importance_reads_as_none_and_a_logged_one_reads_back(mlflow_store):
    import mlflow

    client = mlflow.MlflowClient()
    run = client.create_run(client.create_experiment("importance_load"))
    assert importance.load(run.info.run_id) is None  # a version trained before importance was logged
    client.log_dict(run.info.run_id, {"features": {"x": {"mean": 0.1, "std": 0.0}}}, importance.ARTIFACT)
    assert importance.load(run.info.run_id) == {"features": {"x": {"mean": 0.1, "std": 0.0}}}
