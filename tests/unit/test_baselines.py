"""The rules baseline: its rule by hand, its pipeline from the spec, and that it travels like a model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from continuum import baselines, metrics, scoring, simulate, training
from continuum.baselines import CategoryPopularityBaseline
from continuum.specs import get_domain

RETAIL = "retail_recommender"


@pytest.fixture(scope="module")
def spec():
    return get_domain(RETAIL)


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "impression_id": ["a", "b", "c", "d"],
            "item_popularity": [0.10, 0.10, 0.40, np.nan],
            "item_category": ["books", "home", "home", "books"],
            "user_preferred_category": ["books", "books", "home", "books"],
            "purchased": [1, 0, 1, 0],
        }
    )


def test_score_is_popularity_boosted_on_a_category_match_and_clipped():
    rule = CategoryPopularityBaseline(boost=3.0).fit(rows(), rows()["purchased"])
    # match: 0.1 x 3; no match: 0.1; match: 0.4 x 3 clipped to 1; missing popularity: 0.
    np.testing.assert_allclose(rule.predict_proba(rows())[:, 1], [0.3, 0.1, 1.0, 0.0])
    np.testing.assert_allclose(rule.predict_proba(rows()).sum(axis=1), 1.0)
    np.testing.assert_array_equal(rule.predict(rows()), [0, 0, 1, 0])
    np.testing.assert_array_equal(rule.classes_, [0, 1])


def test_categories_compare_by_value_whatever_the_dtype():
    frame = rows().assign(
        item_category=pd.Categorical(rows()["item_category"], categories=["home", "books"]),
        user_preferred_category=pd.Categorical(rows()["user_preferred_category"]),
    )
    rule = CategoryPopularityBaseline(boost=2.0).fit(frame, frame["purchased"])
    np.testing.assert_allclose(rule.predict_proba(frame)[:, 1], [0.2, 0.1, 0.8, 0.0])


def test_columns_come_from_params_and_extra_columns_are_ignored():
    renamed = rows().rename(
        columns={"item_popularity": "pop", "item_category": "cat", "user_preferred_category": "fav"}
    )
    rule = CategoryPopularityBaseline("pop", "cat", "fav", boost=1.0).fit(renamed, renamed["purchased"])
    shuffled = renamed[["fav", "purchased", "pop", "impression_id", "cat"]].assign(noise=1)
    np.testing.assert_allclose(rule.predict_proba(shuffled)[:, 1], [0.1, 0.1, 0.4, 0.0])


def test_missing_column_and_array_input_say_what_to_do():
    rule = CategoryPopularityBaseline().fit(rows(), rows()["purchased"])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['item_category'\].*baseline.params"):
        rule.predict_proba(rows().drop(columns=["item_category"]))
    with pytest.raises(ValueError, match="pass a pandas DataFrame"):
        rule.predict_proba(rows().to_numpy())


def test_fit_needs_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        CategoryPopularityBaseline().fit(rows(), [0, 0, 0, 0])
    with pytest.raises(ValueError, match="needs the labels"):
        CategoryPopularityBaseline().fit(rows())


def test_is_a_scikit_learn_estimator():
    rule = CategoryPopularityBaseline(boost=4.0)
    assert clone(rule).get_params() == rule.get_params()
    assert rule.get_params()["boost"] == 4.0


def test_pipeline_from_the_spec_has_no_preprocessing(spec):
    pipeline = baselines.build_baseline_pipeline(spec)
    assert isinstance(pipeline, Pipeline) and [name for name, _ in pipeline.steps] == ["model"]
    assert isinstance(pipeline.named_steps["model"], CategoryPopularityBaseline)
    assert pipeline.named_steps["model"].get_params() == spec.baseline.params


def test_bad_baseline_sections_are_spec_errors(spec):
    with pytest.raises(ValueError, match="no baseline section"):
        baselines.build_baseline_pipeline(get_domain("insurance_claim_risk"))
    wrong_path = spec.model_copy(
        update={"baseline": spec.baseline.model_copy(update={"estimator": "continuum.baselines.Nope"})}
    )
    with pytest.raises(ValueError, match=r"baseline.estimator 'continuum.baselines.Nope' cannot be imported"):
        baselines.build_baseline_pipeline(wrong_path)
    wrong_params = spec.model_copy(
        update={"baseline": spec.baseline.model_copy(update={"params": {"bost": 2}})}
    )
    with pytest.raises(ValueError, match="baseline.params do not fit"):
        baselines.build_baseline_pipeline(wrong_params)


@pytest.fixture(scope="module")
def fitted(spec):
    return baselines.fit_baseline(spec, simulate.generate(RETAIL, 2000, seed=1))


def test_fitted_baseline_evaluates_scores_and_passes_the_smoke_test(spec, fitted):
    batch = simulate.generate(RETAIL, 1000, seed=2)
    assert 0.6 < metrics.evaluate(spec, fitted, batch)["roc_auc"] < 0.8
    scoring.smoke_test(spec, fitted, batch.head(50))
    top = scoring.score(spec, fitted, batch.drop(columns=["purchased"]))
    assert top.groupby("user")["rank"].max().max() == 5


def test_fit_baseline_needs_the_label(spec):
    with pytest.raises(ValueError, match="label column 'purchased'"):
        baselines.fit_baseline(spec, simulate.generate(RETAIL, 50, seed=1, faults=["unlabelled"]))


def test_skops_round_trip_keeps_the_scores(spec, fitted):
    """MLflow logs models with skops (training._log_model): the class must load back by its module path."""
    import skops.io

    data = skops.io.dumps(fitted)
    untrusted = skops.io.get_untrusted_types(data=data)
    assert "continuum.baselines.CategoryPopularityBaseline" in untrusted
    loaded = skops.io.loads(data, trusted=untrusted)
    frame = training.features(spec, simulate.generate(RETAIL, 100, seed=3))
    np.testing.assert_allclose(loaded.predict_proba(frame), fitted.predict_proba(frame))


def test_baseline_registers_and_loads_through_mlflow(spec, fitted, mlflow_store, monkeypatch):
    # skops with the trusted types recorded at logging loads without relaxing MLflow's pickle guard
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    import mlflow.pyfunc
    import mlflow.sklearn

    train, holdout = training.split(simulate.generate(RETAIL, 2000, seed=1), spec)
    result = training.train_and_register(
        spec, train, holdout, batch_id="00000000000000b0", dataset_uri="s3://x/rules.parquet", pipeline=fitted
    )
    assert result.metrics["roc_auc"] == pytest.approx(metrics.evaluate(spec, fitted, holdout)["roc_auc"])
    raw = simulate.generate(RETAIL, 20, seed=9, faults=["unlabelled"])
    loaded = mlflow.sklearn.load_model(result.model_uri)
    np.testing.assert_allclose(loaded.predict_proba(raw), fitted.predict_proba(raw))
    py_model = mlflow.pyfunc.load_model(result.model_uri)
    np.testing.assert_allclose(
        np.asarray(py_model.predict(training.features(spec, raw))), fitted.predict_proba(raw)
    )


def test_reference_models_are_the_class_prior_and_a_logistic_regression_on_the_model_inputs():
    from continuum import baselines, metrics, simulate, training
    from continuum.specs import get_domain

    spec = get_domain("insurance_claim_risk")
    train, holdout = training.split(simulate.generate(spec.name, 1200, seed=14), spec)
    fitted = baselines.reference_models(spec, train)
    assert list(fitted) == list(baselines.REFERENCE_MODELS)
    prior = fitted["class_prior"].predict_proba(holdout)[:, 1]
    assert np.allclose(prior, train[spec.data.target].mean())  # knows nothing but the positive rate
    inputs = [c.name for c in spec.data.feature_columns]
    for model in fitted.values():
        assert list(model.feature_names_in_) == inputs  # never the id, the label or driver_age_band
    logistic = fitted["logistic_regression"]
    assert logistic.named_steps["model"].random_state == spec.training.seed
    assert "StandardScaler" in str(logistic.named_steps["preprocess"])  # scaled like a linear challenger
    assert metrics.evaluate(spec, logistic, holdout)["roc_auc"] > metrics.evaluate(spec, fitted["class_prior"], holdout)["roc_auc"]
