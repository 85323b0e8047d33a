"""Models load with MLflow's pickle guard explicitly off; pickle artefacts and foreign types are refused.

MLflow 3.17 defaults MLFLOW_ALLOW_PICKLE_DESERIALIZATION to true, so these tests set it
to "false" (tests/conftest.py does too) instead of unsetting it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from continuum import model_loading, registry, settings

NAME = "guarded_domain"


@pytest.fixture
def guard_off(mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    from continuum import tracking

    tracking.ensure_experiment(NAME)
    return mlflow_store


def _log(model, name: str = NAME, **kwargs) -> str:
    import mlflow
    import mlflow.sklearn

    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, pip_requirements=["scikit-learn"], **kwargs
        )
    return str(info.registered_model_version)


def _hist_gradient_boosting():
    """A model skops does not trust by default (its TreePredictor), as the shipped domains train."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = load_breast_cancer(return_X_y=True)
    return HistGradientBoostingClassifier(max_iter=10).fit(x, y), x


def test_the_guard_is_pinned_false_in_every_process_that_imports_continuum():
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"}
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"  # a user's setting does not relax it
    code = "import os, continuum; print(os.environ['MLFLOW_ALLOW_PICKLE_DESERIALIZATION'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "false"
    assert settings.client_env({"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"})[
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    ] == "false"


def test_a_registered_skops_model_loads_with_the_guard_false(guard_off):
    import mlflow.sklearn
    import skops.io
    from mlflow.exceptions import MlflowException

    model, x = _hist_gradient_boosting()
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in trusted
    version = _log(model, serialization_format="skops", skops_trusted_types=trusted)
    registry.promote(NAME, version)

    # MLflow's own loader refuses even skops while the guard is off: the guard is really off here.
    with pytest.raises(MlflowException, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        mlflow.sklearn.load_model(f"models:/{NAME}/{version}")
    loaded = registry.load_champion(NAME)
    np.testing.assert_allclose(loaded.predict_proba(x[:20]), model.predict_proba(x[:20]))


def test_a_pickle_flavoured_artefact_is_refused_with_the_guard_false(guard_off):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    version = _log(model, serialization_format="cloudpickle")
    registry.promote(NAME, version)
    with pytest.raises(model_loading.UnsafeModel, match="serialised with cloudpickle"):
        registry.load_champion(NAME)


def test_a_skops_artefact_that_trusts_a_foreign_type_is_refused(guard_off):
    """The trusted list written in the artefact is not what decides: Continuum's allow-list is."""
    import functools

    from sklearn.preprocessing import FunctionTransformer

    # A transformer holding os.system behind functools.partial: skops would build both if trusted.
    model = FunctionTransformer(functools.partial(os.system, "true"))
    import skops.io

    declared = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    version = _log(model, serialization_format="skops", skops_trusted_types=declared)
    registry.promote(NAME, version)
    with pytest.raises(model_loading.UnsafeModel, match="outside Continuum's allow-list") as refused:
        registry.load_champion(NAME)
    assert "posix.system" in str(refused.value) or "os.system" in str(refused.value)


def test_serving_checks_the_champion_before_it_lets_mlflow_load_it(guard_off):
    """`continuum serve` hands MLflow a pinned version, and only one the allow-list accepted."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    from continuum import serving

    with pytest.raises(serving.NoChampion, match="no champion"):
        serving.command(NAME)
    model, _ = _hist_gradient_boosting()
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    registry.promote(NAME, _log(model, serialization_format="skops", skops_trusted_types=trusted))
    serve = serving.command(NAME, port=6123)
    assert serve.model_uri == f"models:/{NAME}/{serve.version}" and serve.model_uri in serve.argv
    assert serve.env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "true"
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"  # only the server's process gets it

    pickled = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    registry.promote(NAME, _log(pickled, serialization_format="cloudpickle"))
    with pytest.raises(model_loading.UnsafeModel, match="serialised with cloudpickle"):
        serving.command(NAME)
