"""Pipelines from specs, the stratified split, and one real train-and-register against MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from continuum import simulate, tracking, training
from continuum.specs import DomainSpec, get_domain

DOMAIN = "insurance_claim_risk"
B1, B2 = "00000000000b0001", "00000000000b0002"


def _spec(estimator: str = "sklearn.ensemble.HistGradientBoostingClassifier", params=None) -> DomainSpec:
    """A spec with one column of every type."""
    return DomainSpec.model_validate(
        {
            "name": "every_type",
            "description": "test",
            "owner": "tests",
            "data": {
                "target": "label",
                "id_column": "id",
                "columns": [
                    {"name": "id", "type": "string"},
                    {"name": "count", "type": "int"},
                    {"name": "amount", "type": "float", "nullable": True},
                    {"name": "colour", "type": "category", "allowed": ["red", "blue"]},
                    {"name": "city", "type": "string", "nullable": True},
                    {"name": "member", "type": "bool"},
                    {"name": "opened", "type": "datetime"},
                    {"name": "label", "type": "int", "allowed": [0, 1]},
                ],
            },
            "model": {"estimator": estimator, "params": params if params is not None else {"max_iter": 20}},
        }
    )


def _every_type_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    amount = rng.normal(100, 20, n)
    amount[:10] = np.nan
    city = rng.choice(["paris", "lyon", "nice"], n).astype(object)
    city[10:15] = None  # Parquet gives None for a missing text value
    city[15:20] = np.nan  # CSV gives NaN
    colour = rng.choice(["red", "blue"], n)
    return pd.DataFrame(
        {
            "id": [f"id-{i}" for i in range(n)],
            "count": rng.integers(0, 10, n),
            "amount": amount,
            "colour": colour,
            "city": city,
            "member": rng.random(n) < 0.5,
            "opened": pd.date_range("2024-01-01", periods=n, freq="h"),
            "label": (colour == "red").astype(int),
        }
    )


def test_pipeline_handles_every_column_type_and_raw_frames():
    spec = _spec()
    frame = _every_type_frame()
    pipeline = training.fit(spec, frame)
    names = list(pipeline.named_steps["preprocess"].get_feature_names_out())
    assert {"count", "amount", "colour_red", "city_paris", "member_True"} <= set(names)
    assert not any(n.startswith(("opened", "id", "label")) for n in names)  # datetime, id, label left out
    assert "member_False" not in names  # a bool is one 0/1 column
    # The scorer passes raw frames: with the id, without the label, with values never seen.
    unseen = frame.drop(columns=["label"]).assign(colour="green", city=None)
    proba = pipeline.predict_proba(unseen)
    assert proba.shape == (len(frame), 2) and np.isfinite(proba).all()
    assert (pipeline.predict(frame) == frame["label"]).mean() > 0.95


def test_scale_sensitive_estimators_get_a_scaler():
    linear = training.build_pipeline(_spec("sklearn.linear_model.LogisticRegression", {"max_iter": 200}))
    numeric = linear.named_steps["preprocess"].transformers[0][1]
    assert "standardscaler" in numeric.named_steps
    trees = training.build_pipeline(_spec())
    assert "standardscaler" not in trees.named_steps["preprocess"].transformers[0][1].named_steps


def test_bad_estimator_path_names_the_field():
    with pytest.raises(ValueError, match=r"model\.estimator 'sklearn\.ensemble\.NoSuchForest'"):
        training.build_pipeline(_spec("sklearn.ensemble.NoSuchForest"))
    with pytest.raises(ValueError, match=r"'nowhere\.Model' is outside the allowed estimator packages"):
        training.build_pipeline(_spec("nowhere.Model"))


def test_bad_param_names_the_field():
    with pytest.raises(ValueError, match=r"model\.params.*max_iterations"):
        training.build_pipeline(_spec(params={"max_iterations": 3}))


def test_split_is_stratified_and_fit_needs_the_label():
    spec = get_domain(DOMAIN)
    frame = simulate.generate(DOMAIN, 2000, seed=1)
    train, holdout = training.split(frame, spec, test_size=0.25, seed=0)
    assert (len(train), len(holdout)) == (1500, 500)
    assert abs(train["has_claim"].mean() - holdout["has_claim"].mean()) < 0.005
    assert set(train["policy_id"]).isdisjoint(holdout["policy_id"])
    with pytest.raises(ValueError, match="label column 'has_claim'"):
        training.fit(spec, frame.drop(columns=["has_claim"]))
    with pytest.raises(ValueError, match=r"lacks feature column\(s\) \['driver_age'\]"):
        training.fit(spec, frame.drop(columns=["driver_age"]))


def test_pip_requirements_come_from_the_lock():
    pins = tracking.pip_requirements()
    lock = (tracking.settings.REPO_ROOT / "requirements.txt").read_text().splitlines()
    assert [p.split("==")[0] for p in pins] == list(tracking.MODEL_REQUIREMENTS)
    assert all(p in lock for p in pins)


def test_artifact_location_follows_the_environment(monkeypatch):
    monkeypatch.setenv(tracking.ARTIFACTS_ENV, "s3://bucket/")
    assert tracking.artifact_location("claims") == "s3://bucket/claims"
    monkeypatch.delenv(tracking.ARTIFACTS_ENV)
    assert tracking.artifact_location("claims") is None


def test_train_and_register_end_to_end(mlflow_store, monkeypatch):
    # skops with the trusted types recorded at logging loads without relaxing MLflow's pickle guard
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn

    base = get_domain(DOMAIN)
    spec = base.model_copy(update={"model": base.model.model_copy(update={"params": {"max_iter": 30}})})
    train, holdout = training.split(simulate.generate(DOMAIN, 3000, seed=1), spec)

    result = training.train_and_register(
        spec,
        train,
        holdout,
        batch_id=B1,
        dataset_uri="s3://continuum/validated/x.parquet",
        tags={"why": "test"},
    )

    client = mlflow.MlflowClient()
    version = client.get_model_version(DOMAIN, result.version)
    assert result.model_uri == f"models:/{DOMAIN}/{result.version}" and version.run_id == result.run_id
    # the run's tags, and the hash of the spec the version was trained under
    spec_hash = spec.content_hash()
    assert version.tags == {"domain": DOMAIN, "batch_id": B1, "role": "model", "spec_hash": spec_hash, "why": "test"}
    experiment = client.get_experiment_by_name(DOMAIN)
    assert result.experiment == DOMAIN
    assert experiment.artifact_location == f"s3://{tracking.settings.mlflow_bucket()}/{DOMAIN}"

    run = client.get_run(result.run_id)
    assert run.info.run_name == f"train-{B1}"
    assert {"domain": DOMAIN, "batch_id": B1, "why": "test"}.items() <= run.data.tags.items()
    assert run.data.params["train_rows"] == "2250" and run.data.params["model.max_iter"] == "30"
    assert set(run.data.metrics) >= {"accuracy", "roc_auc", "brier", "importance.vehicle_power"}
    # What the model card reads, logged with every version: fairness per protected column,
    # metrics per segment, permutation importance of every input column.
    logged = {name: mlflow.artifacts.load_dict(f"runs:/{result.run_id}/{name}.json") for name in ("fairness", "segments", "importance")}
    assert set(logged["fairness"]["columns"]) == {"driver_age_band"}
    assert logged["segments"]["column"] == "region" and set(logged["segments"]["segments"]) == {"north", "south", "east", "west"}
    assert set(logged["importance"]["features"]) == {c.name for c in spec.data.feature_columns}
    assert run.data.metrics["importance.vehicle_power"] == logged["importance"]["features"]["vehicle_power"]["mean"]
    assert run.data.metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert result.metrics["accuracy"] >= 0.85 and result.metrics["roc_auc"] > 0.7
    contexts = {
        tag.value for i in run.inputs.dataset_inputs for tag in i.tags if tag.key == "mlflow.data.context"
    }
    assert contexts == {"training", "holdout"}
    assert all(i.dataset.source.find("validated/x.parquet") >= 0 for i in run.inputs.dataset_inputs)

    raw = simulate.generate(DOMAIN, 20, seed=9, faults=["unlabelled"])  # what the scorer passes
    sk_model = mlflow.sklearn.load_model(result.model_uri)
    assert sk_model.predict_proba(raw).shape == (20, 2)
    py_model = mlflow.pyfunc.load_model(result.model_uri)
    proba = np.asarray(py_model.predict(raw))
    np.testing.assert_allclose(proba, sk_model.predict_proba(raw))

    again = training.train_and_register(
        spec, train, holdout, batch_id=B2, dataset_uri="s3://x/y.parquet"
    )
    assert int(again.version) == int(result.version) + 1


def test_train_threads_come_from_the_environment(monkeypatch):
    monkeypatch.delenv(training.THREADS_ENV, raising=False)
    assert training.threads() == 1
    monkeypatch.setenv(training.THREADS_ENV, "2")
    assert training.threads() == 2
    monkeypatch.setenv(training.THREADS_ENV, "many")
    with pytest.raises(ValueError, match="CONTINUUM_TRAIN_THREADS='many'"):
        training.threads()


@pytest.mark.parametrize(
    ("domain", "kept_out"),
    [
        ("retail_recommender", {"impression_id", "user_id", "item_id", "customer_age_band", "purchased"}),
        ("insurance_claim_risk", {"policy_id", "driver_age_band", "has_claim"}),
    ],
)
def test_fitted_pipeline_never_sees_keys_protected_columns_or_the_label(domain, kept_out):
    spec = get_domain(domain)
    frame = simulate.generate(domain, 1500, seed=2)
    assert kept_out <= set(frame.columns)  # the simulator lands them; the model must not use them
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"params": {"max_iter": 10}})})
    pipeline = training.fit(spec, frame)
    seen = set(pipeline.feature_names_in_)
    assert seen.isdisjoint(kept_out)
    assert seen == {c.name for c in spec.data.feature_columns}


def _small_spec():
    base = get_domain(DOMAIN)
    return base.model_copy(update={"model": base.model.model_copy(update={"params": {"max_iter": 10}})})


def _versions() -> list[str]:
    import mlflow

    return sorted(str(v.version) for v in mlflow.MlflowClient().search_model_versions(f"name = '{DOMAIN}'"))


def test_registering_the_same_batch_twice_keeps_one_version(mlflow_store):
    spec = _small_spec()
    train, holdout = training.split(simulate.generate(DOMAIN, 600, seed=2), spec)
    kwargs = {"batch_id": B1, "dataset_uri": "s3://x/y.parquet", "tags": {"role": "challenger"}}
    first = training.train_and_register(spec, train, holdout, **kwargs)
    retry = training.train_and_register(spec, train, holdout, **kwargs)
    assert retry.version == first.version and retry.run_id == first.run_id
    assert _versions() == [first.version]
    baseline = training.train_and_register(spec, train, holdout, **{**kwargs, "tags": {"role": "baseline"}})
    assert baseline.version != first.version  # another role of the same batch is another model


def test_a_version_registered_by_a_killed_attempt_is_found_by_its_run(mlflow_store):
    """Killed after registering, before the version's own tags were written: the run's tags find it."""
    import mlflow

    spec = _small_spec()
    train, holdout = training.split(simulate.generate(DOMAIN, 600, seed=3), spec)
    kwargs = {"batch_id": B2, "dataset_uri": "s3://x/y.parquet", "tags": {"role": "challenger"}}
    first = training.train_and_register(spec, train, holdout, **kwargs)
    client = mlflow.MlflowClient()
    for key in ("domain", "batch_id", "role", "spec_hash"):
        client.delete_model_version_tag(DOMAIN, first.version, key)
    again = training.train_and_register(spec, train, holdout, **kwargs)
    assert again.version == first.version and _versions() == [first.version]
    healed = client.get_model_version(DOMAIN, first.version).tags
    assert healed["batch_id"] == B2 and healed["spec_hash"] == spec.content_hash()


def test_batch_ids_that_are_not_hex_never_reach_an_mlflow_filter(mlflow_store):
    spec = _small_spec()
    train, holdout = training.split(simulate.generate(DOMAIN, 600, seed=4), spec)
    with pytest.raises(ValueError, match="16 hex digits"):
        training.train_and_register(spec, train, holdout, batch_id="x' or '1'='1", dataset_uri="s3://x/y")


def test_the_test_pause_in_fit_is_inert_unless_set_and_pauses_only_once(tmp_path, monkeypatch):
    import time

    monkeypatch.delenv(training.TEST_PAUSE_IN_FIT, raising=False)
    started = time.monotonic()
    training._test_pause_in_fit()  # unset: nothing happens
    marker = tmp_path / "pause"
    marker.write_text("1234")  # an earlier fit paused already: this one (the retry) goes on at once
    monkeypatch.setenv(training.TEST_PAUSE_IN_FIT, str(marker))
    training._test_pause_in_fit()
    assert time.monotonic() - started < 5 and marker.read_text() == "1234"
    assert list(tmp_path.iterdir()) == [marker]


# --- reproducibility ---------------------------------------------------------------------------


def _forest_spec(seed: int = 0) -> DomainSpec:
    """Claims with a random forest: bootstrap and feature sampling differ run to run unless seeded."""
    base = get_domain(DOMAIN)
    model = base.model.model_copy(
        update={"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 15, "max_depth": 6}}
    )
    return base.model_copy(update={"model": model, "training": base.training.model_copy(update={"seed": seed})})


def test_the_estimators_random_state_is_the_training_seed():
    assert training.make_estimator(_forest_spec(seed=7)).random_state == 7
    assert training.make_estimator(get_domain(DOMAIN)).random_state == get_domain(DOMAIN).training.seed
    from continuum.baselines import make_baseline

    assert "random_state" not in make_baseline(get_domain("retail_recommender")).get_params()  # rules take none


def test_a_random_state_other_than_the_seed_is_a_spec_error(tmp_path):
    import yaml

    from continuum import specs

    raw = yaml.safe_load(get_domain(DOMAIN).source.read_text())
    raw["model"]["params"]["random_state"] = 42
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(specs.SpecLoadError, match=r"model.params.random_state \(42\) differs from training.seed \(0\)"):
        specs.load_spec(path)
    raw["training"]["seed"] = 42
    path.write_text(yaml.safe_dump(raw))
    assert specs.load_spec(path).training.seed == 42


def test_retraining_on_the_same_window_gives_identical_metrics_and_dataset_digests(mlflow_store):
    import mlflow

    spec = _forest_spec()
    frame = simulate.generate(DOMAIN, 800, seed=8)
    runs = []
    for batch_id in (B1, B2):  # two batches, so the second is trained afresh, not found registered
        train, holdout = training.split(frame, spec, test_size=spec.training.holdout_fraction, seed=spec.training.seed)
        result = training.train_and_register(spec, train, holdout, batch_id=batch_id, dataset_uri="s3://x/y.parquet")
        runs.append((result, mlflow.MlflowClient().get_run(result.run_id)))
    (first, first_run), (second, second_run) = runs
    assert first.version != second.version
    assert first.metrics == second.metrics
    assert 0 < first.metrics["brier"] < 0.2

    def digests(run) -> dict[str, str]:
        return {
            tag.value: i.dataset.digest for i in run.inputs.dataset_inputs for tag in i.tags if tag.key == "mlflow.data.context"
        }

    assert digests(first_run) == digests(second_run) and set(digests(first_run)) == {"training", "holdout"}
    assert first_run.data.params["seed"] == "0"
