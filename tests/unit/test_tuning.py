"""Tuning within a budget: `model.search` validated at load, run on the training window, logged in MLflow."""

from __future__ import annotations

import json

import pytest
import yaml

from continuum import simulate, specs, training
from continuum.specs import get_domain

DOMAIN = "insurance_claim_risk"
SPACE = {"max_leaf_nodes": [7, 15, 31], "learning_rate": [0.05, 0.2]}


def _load(tmp_path, search: dict) -> specs.DomainSpec:
    raw = yaml.safe_load(get_domain(DOMAIN).source.read_text())
    raw["model"]["params"] = {"max_iter": 20}
    raw["model"]["search"] = search
    path = tmp_path / f"{DOMAIN}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return specs.load_spec(path)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"space": {"max_leafs": [7]}, "budget": 4}, "space.max_leafs is not a parameter of sklearn.ensemble.HistGradientBoostingClassifier"),
        ({"space": {"max_leaf_nodes": []}, "budget": 4}, "space.max_leaf_nodes lists no values"),
        ({"space": {"random_state": [1, 2]}, "budget": 4}, "space.random_state cannot be searched"),
        ({"space": SPACE, "budget": 4, "method": "halving_grid"}, "the grid has 6 points but budget is 4"),
        ({"space": SPACE, "budget": 4, "methd": "halving"}, "methd"),
    ],
)
def test_a_bad_search_is_a_spec_error_naming_the_field(tmp_path, search, message):
    with pytest.raises(specs.SpecLoadError, match=message) as caught:
        _load(tmp_path, search)
    assert caught.value.error.field.startswith("model.search")


@pytest.fixture(scope="module")
def window():
    return simulate.generate(DOMAIN, 1200, seed=13)


def test_halving_search_tries_the_budget_on_the_training_window_and_refits_the_best(tmp_path, window):
    spec = _load(tmp_path, {"space": SPACE, "budget": 4, "method": "halving"})
    pipeline, search = training.tune(spec, window)
    assert search.n_candidates == 4 and search.method == "halving" and search.metric == "accuracy"
    assert all(search.best_params[name] in values for name, values in SPACE.items())
    fitted = pipeline.named_steps["model"].get_params()
    assert {name: fitted[name] for name in SPACE} == search.best_params
    assert fitted["random_state"] == spec.training.seed and fitted["max_iter"] == 20  # spec params kept
    assert max(c["rows"] for c in search.candidates) <= len(window)
    assert search.best_cv_score == max(c["mean_cv_score"] for c in search.candidates if c["iteration"] == search.n_iterations - 1)
    assert training.chosen_params(spec, pipeline) == {"max_iter": 20, **search.best_params}
    again, repeat = training.tune(spec, window)
    assert repeat == search  # seeded: the same window gives the same search


def test_grid_search_tries_every_point(tmp_path, window):
    spec = _load(tmp_path, {"space": {"max_leaf_nodes": [7, 31]}, "budget": 2, "method": "halving_grid"})
    _, search = training.tune(spec, window)
    assert search.n_candidates == 2 and search.best_params["max_leaf_nodes"] in (7, 31)


def test_the_search_is_logged_in_the_challengers_run(tmp_path, window, mlflow_store):
    import mlflow

    spec = _load(tmp_path, {"space": SPACE, "budget": 3})
    train, holdout = training.split(window, spec)
    pipeline, search = training.fit_challenger(spec, train)
    result = training.train_and_register(
        spec, train, holdout, batch_id="00000000000000d1", dataset_uri="s3://x/y", pipeline=pipeline, search=search
    )
    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.params["search.n_candidates"] == "3" and run.data.params["search.method"] == "halving"
    for name, value in search.best_params.items():
        assert run.data.params[f"model.{name}"] == str(value)  # the chosen value, not the spec's
    assert run.data.metrics["search_best_cv_score"] == pytest.approx(search.best_cv_score)
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/search.json"))
    assert len({json.dumps(c["params"], sort_keys=True) for c in logged["candidates"]}) == 3
    assert logged["best_params"] == search.best_params


def test_without_a_search_the_challenger_is_fitted_as_the_spec_says(window):
    spec = get_domain(DOMAIN)
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"params": {"max_iter": 10}})})
    pipeline, search = training.fit_challenger(spec, window)
    assert search is None and pipeline.named_steps["model"].max_iter == 10


def test_the_readmes_optional_keys_load_on_the_shipped_claims_spec(tmp_path):
    """README, "Add a domain", optional sections: the search, seed, baseline gain and reason codes as written."""
    import re

    from continuum.settings import REPO_ROOT

    section = (REPO_ROOT / "README.md").read_text().split("Optional sections", 1)[1]
    optional = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    raw = yaml.safe_load(get_domain(DOMAIN).source.read_text())
    raw["model"]["search"] = optional["model"]["search"]
    raw["training"]["seed"] = optional["training"]["seed"]
    raw["blessing"]["min_gain_over_baseline"] = optional["blessing"]["min_gain_over_baseline"]
    raw["scoring"]["reason_codes"] = optional["scoring"]["reason_codes"]
    path = tmp_path / f"{DOMAIN}.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = specs.load_spec(path)
    assert spec.model.search.budget == 4 and spec.model.search.method == "halving"
    assert spec.blessing.min_gain_over_baseline == 0.0 and spec.scoring.reasons == 3
