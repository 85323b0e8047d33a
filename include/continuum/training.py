"""Train a domain's model: a scikit-learn Pipeline built from its spec, logged to MLflow.

The pipeline does its own preprocessing from the data contract, so a model loaded
back from the registry takes the raw feature frame the batch scorer has (extra
columns such as the id or the label are ignored) and nothing outside scikit-learn
is needed to load it.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from continuum import metrics, tracking

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)

THREADS_ENV = "CONTINUUM_TRAIN_THREADS"
# Estimators that compare feature magnitudes and so want scaled inputs.
_SCALE_SENSITIVE = ("sklearn.linear_model.", "sklearn.svm.", "sklearn.neighbors.", "sklearn.neural_network.")


class TrainingResult(BaseModel):
    """What the training task hands on (small enough for an XCom)."""

    run_id: str
    model_uri: str
    version: str
    metrics: dict[str, float]
    experiment: str


def instantiate(spec: DomainSpec, section: str, example: str):
    """The estimator a spec section (`model` or `baseline`) names by dotted path, with its params.

    A bad path or bad params end in one line naming the spec's field.
    """
    from continuum.specs import EstimatorError, resolve_estimator

    model = getattr(spec, section)
    path = model.estimator
    try:
        cls = resolve_estimator(path)  # the allowed packages are checked again, before any import
    except EstimatorError as exc:
        raise ValueError(f"{spec.name}: {section}.estimator {exc}; use a class path like {example}") from exc
    try:
        estimator = cls(**model.params)
    except TypeError as exc:
        raise ValueError(f"{spec.name}: {section}.params do not fit {path} ({exc}); fix {section}.params") from exc
    return seeded(estimator, spec.training.seed)


def seeded(estimator, seed: int):
    """`estimator` with `random_state` set to the training seed, when it takes one.

    Without it HistGradientBoosting's early-stopping split (on by default above 10k rows),
    a forest's bootstrap or a search's sampling differ run to run, and a retrain on the same
    window would not reproduce its metrics.
    """
    if "random_state" in estimator.get_params(deep=False):
        estimator.set_params(random_state=seed)
    return estimator


def make_estimator(spec: DomainSpec):
    """The estimator `model.estimator` names, with `model.params`."""
    return instantiate(spec, "model", "sklearn.ensemble.HistGradientBoostingClassifier")


def build_pipeline(spec: DomainSpec, estimator=None) -> Pipeline:
    """Preprocessing by column type from `data.columns`, then the spec's estimator (or `estimator`).

    numbers: median imputation (plus scaling for linear, SVM, neighbour and neural
    models); categories and strings: most frequent value, then one-hot (unknown
    values become all zeros); bools: one-hot with the binary column dropped, i.e.
    0/1. Datetime columns are left out: a raw timestamp does not generalise, and a
    domain that needs one should derive a feature from it upstream.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    estimator = make_estimator(spec) if estimator is None else estimator
    scale = f"{type(estimator).__module__}.".startswith(_SCALE_SENSITIVE)
    groups: dict[str, list[str]] = {"numeric": [], "categorical": [], "boolean": []}
    kind = {
        "int": "numeric",
        "float": "numeric",
        "category": "categorical",
        "string": "categorical",
        "bool": "boolean",
    }
    for column in spec.data.feature_columns:
        if column.type in kind:
            groups[kind[column.type]].append(column.name)
    if not any(groups.values()):
        raise ValueError(
            f"{spec.name}: data.columns declares no usable feature column (all are datetime or id)"
        )

    numeric = [SimpleImputer(strategy="median"), *([StandardScaler()] if scale else [])]
    categorical = [
        # Two imputers: CSV gives NaN for a missing text value, Parquet gives None.
        SimpleImputer(strategy="most_frequent"),
        SimpleImputer(missing_values=None, strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
    ]
    boolean = [
        OneHotEncoder(drop="if_binary", handle_unknown="ignore", sparse_output=False, dtype=np.float64)
    ]
    steps = {"numeric": numeric, "categorical": categorical, "boolean": boolean}
    preprocess = ColumnTransformer(
        [(name, make_pipeline(*steps[name]), columns) for name, columns in groups.items() if columns],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def features(spec: DomainSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns of `frame`, in contract order.

    Everything else stays out, so a fitted pipeline never sees it (its `feature_names_in_`):
    the label, the id, keys (`feature: false`, e.g. user and item ids, which scoring groups
    by but a model would memorise) and protected attributes (`protected: true`, which
    fairness is measured on and the model must not use). Datetimes are left out too (see
    `build_pipeline`)."""
    names = [c.name for c in spec.data.feature_columns if c.type != "datetime"]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"{spec.name}: the frame lacks feature column(s) {missing} declared in data.columns")
    return frame[names]


def trained_columns(model) -> list[str] | None:
    """The input columns a fitted model learnt from (scikit-learn's `feature_names_in_`), or None
    for a model that does not record them (a rules model, a stand-in)."""
    names = getattr(model, "feature_names_in_", None)  # a Pipeline asks its first step
    return None if names is None else [str(name) for name in names]


def model_inputs(spec: DomainSpec, model, frame: pd.DataFrame) -> pd.DataFrame:
    """Exactly the columns `model` was trained on, in its order; a model that does not record
    them (a rules baseline) gets the contract's features that the frame has.

    A contract changes under a live champion: a column added to the spec (and to the
    batches) is dropped here, so the champion keeps scoring with what it learnt until a
    challenger trained on the new contract replaces it; and the champion's own reference
    sample, written before the column existed, still smoke-tests it. A column the champion
    needs and the frame lacks (removed from the spec) cannot be made up, so it is an error.
    """
    names = trained_columns(model)
    if names is None:
        names = [c.name for c in spec.data.feature_columns if c.type != "datetime"]
        return frame[[n for n in names if n in frame.columns]]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(
            f"{spec.name}: the model was trained on column(s) {missing} that the data no longer has; restore them in"
            " data.columns (retire a column with `feature: false` first, see `continuum domains --champions`)"
        )
    return frame[names]


def _labels(spec: DomainSpec, frame: pd.DataFrame) -> pd.Series:
    target = spec.data.target
    if target not in frame.columns:
        raise ValueError(f"{spec.name}: cannot train without the label column '{target}' (data.target)")
    return frame[target]


def split(frame: pd.DataFrame, spec: DomainSpec, test_size: float = 0.25, seed: int = 0):
    """(train, holdout), stratified on the label so both keep the positive rate."""
    from sklearn.model_selection import train_test_split

    labels = _labels(spec, frame)
    train, holdout = train_test_split(frame, test_size=test_size, random_state=seed, stratify=labels)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def threads() -> int:
    """OpenMP threads for training (`CONTINUUM_TRAIN_THREADS`, default 1).

    Airflow runs several tasks per worker; with every task spinning one OpenMP
    thread per core, HistGradientBoosting on 15k rows went from 0.4 s to 32 s on a
    busy 2-core machine. One thread is also the fastest choice on data this size.
    """
    value = os.environ.get(THREADS_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_ENV}={value!r} must be a whole number of threads, 1 or more")
    return int(value)


def fit(spec: DomainSpec, frame: pd.DataFrame) -> Pipeline:
    """A fitted pipeline for the spec, trained on all rows of a labelled frame."""
    from threadpoolctl import threadpool_limits

    labels = _labels(spec, frame)
    if labels.isna().any():
        raise ValueError(
            f"{spec.name}: label column '{spec.data.target}' has missing values; validate the batch first"
        )
    with threadpool_limits(limits=threads()):
        pipeline = build_pipeline(spec)
        _test_pause_in_fit()
        return pipeline.fit(features(spec, frame), labels)


TEST_PAUSE_IN_FIT = "CONTINUUM_TEST_PAUSE_IN_FIT"


def _test_pause_in_fit() -> None:
    """Test-only hook, inert unless `CONTINUUM_TEST_PAUSE_IN_FIT` names a file that does not exist yet.

    The first fit to create that file writes its process id into it and sleeps, so a test
    can SIGKILL the task process in the middle of training (tests/integration/
    test_scheduler_concurrency.py). Every later fit, the retry included, finds the file and
    goes on at once.
    """
    import os
    import time

    marker = os.environ.get(TEST_PAUSE_IN_FIT)
    if not marker:
        return
    try:
        handle = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    with os.fdopen(handle, "w") as out:
        out.write(str(os.getpid()))
    log.warning("event=test_pause_in_fit pid=%d seconds=120", os.getpid())
    time.sleep(120)


class SearchResult(BaseModel):
    """What a tuning search tried and chose (logged to the challenger's MLflow run as search.json)."""

    method: str
    budget: int
    metric: str
    n_candidates: int
    n_iterations: int
    best_params: dict[str, Any]
    best_cv_score: float
    candidates: list[dict[str, Any]]

    def mlflow_params(self) -> dict[str, Any]:
        """The chosen values as `model.<param>` (replacing the spec's), and the search's shape."""
        return {
            "search.method": self.method,
            "search.budget": self.budget,
            "search.n_candidates": self.n_candidates,
            **{f"model.{name}": value for name, value in self.best_params.items()},
        }


def tune(spec: DomainSpec, frame: pd.DataFrame) -> tuple[Pipeline, SearchResult]:
    """`model.search` by successive halving on `frame` (the training window only, never the holdout).

    Folds are stratified and shuffled with the training seed, candidates are scored by the
    spec's primary metric (`metrics.scorer`), and the best candidate is refitted on all of
    `frame`, so the returned pipeline is what `fit` would give with the chosen params.
    """
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401 (scikit-learn's switch)
    from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV, StratifiedKFold
    from threadpoolctl import threadpool_limits

    from continuum.validation.checks import json_safe

    config = spec.model.search
    if config is None:
        raise ValueError(f"{spec.name}: the spec declares no model.search to tune")
    seed = spec.training.seed
    space = {f"model__{name}": values for name, values in config.space.items()}
    options: dict[str, Any] = {
        "cv": StratifiedKFold(n_splits=config.cv, shuffle=True, random_state=seed),
        "scoring": metrics.scorer(spec),
        "min_resources": "exhaust",  # the last round uses the whole training window
        "random_state": seed,
        "error_score": "raise",
    }
    if config.method == "halving":
        search = HalvingRandomSearchCV(build_pipeline(spec), space, n_candidates=config.budget, **options)
    else:
        search = HalvingGridSearchCV(build_pipeline(spec), space, **options)
    started = time.monotonic()
    with threadpool_limits(limits=threads()):
        search.fit(features(spec, frame), _labels(spec, frame))
    sign = 1.0 if metrics.higher_is_better(spec.monitoring.primary_metric) else -1.0
    results = search.cv_results_
    candidates = [
        {
            "params": {k.removeprefix("model__"): v for k, v in params.items()},
            "iteration": int(results["iter"][i]),
            "rows": int(results["n_resources"][i]),
            "mean_cv_score": sign * float(results["mean_test_score"][i]),
        }
        for i, params in enumerate(results["params"])
    ]
    result = SearchResult(
        method=config.method,
        budget=config.budget,
        metric=spec.monitoring.primary_metric,
        n_candidates=int(search.n_candidates_[0]),  # the later rounds re-run the survivors
        n_iterations=int(search.n_iterations_),
        best_params=json_safe({k.removeprefix("model__"): v for k, v in search.best_params_.items()}),
        best_cv_score=sign * float(search.best_score_),
        candidates=json_safe(candidates),
    )
    log.info(
        "event=search domain=%s method=%s candidates=%d iterations=%d best_cv_%s=%.4f seconds=%.1f best=%s",
        spec.name,
        config.method,
        result.n_candidates,
        result.n_iterations,
        result.metric,
        result.best_cv_score,
        time.monotonic() - started,
        ",".join(f"{k}={v}" for k, v in result.best_params.items()),
    )
    return search.best_estimator_, result


def fit_challenger(spec: DomainSpec, frame: pd.DataFrame) -> tuple[Pipeline, SearchResult | None]:
    """The challenger fitted on the training window: tuned first when the spec declares `model.search`."""
    if spec.model.search is not None:
        return tune(spec, frame)
    return fit(spec, frame), None


def chosen_params(spec: DomainSpec, pipeline: Pipeline) -> dict[str, Any]:
    """The fitted estimator's values of the params the spec sets or searches (the decision record's)."""
    from continuum.validation.checks import json_safe

    names = [*spec.model.params, *(spec.model.search.space if spec.model.search else {})]
    fitted = pipeline.named_steps["model"].get_params(deep=False)
    return json_safe({name: fitted[name] for name in dict.fromkeys(names) if name in fitted})


def _params(spec: DomainSpec, train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, Any]:
    params = {f"model.{k}": v for k, v in spec.model.params.items()}
    return {
        "estimator": spec.model.estimator,
        **params,
        "seed": spec.training.seed,  # the split's and the estimator's random_state (`seeded`)
        "train_rows": len(train),
        "holdout_rows": len(holdout),
    }


def _skops_types(pipeline: Pipeline) -> list[str]:
    """The types skops must be told to trust to load this pipeline again.

    skops (MLflow's default format) refuses to load types it does not know, e.g.
    HistGradientBoosting's tree predictor. We built this pipeline in this process,
    so its own types are trusted, and the list is recorded next to the model.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))


def _log_datasets(spec: DomainSpec, frames: dict[str, pd.DataFrame], batch_id: str, dataset_uri: str):
    """Log each frame as a run input under its context ("training", "holdout"); returns the datasets."""
    import mlflow
    import mlflow.data

    datasets = {}
    for context, frame in frames.items():
        datasets[context] = mlflow.data.from_pandas(
            frame, source=dataset_uri, targets=spec.data.target, name=f"{spec.name}-{batch_id}-{context}"
        )
        mlflow.log_input(datasets[context], context=context)
    return datasets


def _log_evaluation(spec: DomainSpec, pipeline: Pipeline, holdout: pd.DataFrame) -> dict[str, Any]:
    """What a reviewer reads beside the metrics, logged to the run before the model is registered
    (so every registered version has them): `fairness.json` (protected columns), `segments.json`
    (`blessing.segment_column`) and `importance.json` with `importance.<column>` metrics."""
    import mlflow

    from continuum import fairness, importance

    logged: dict[str, Any] = {"fairness": fairness.evaluate(spec, pipeline, holdout), "segments": None}
    column = spec.blessing.segment_column
    if column is not None:
        logged["segments"] = {
            "column": column,
            "segments": {str(k): v for k, v in metrics.evaluate_segments(spec, pipeline, holdout, column).items()},
        }
    started = time.monotonic()
    logged["importance"] = importance.permutation(spec, pipeline, holdout)
    log.info(
        "event=importance domain=%s rows=%d repeats=%d seconds=%.2f",
        spec.name,
        logged["importance"]["rows"],
        logged["importance"]["repeats"],
        time.monotonic() - started,
    )
    for name, content in logged.items():
        if content is not None:
            mlflow.log_dict(content, f"{name}.json")
    mlflow.log_metrics(importance.as_metrics(logged["importance"]))
    return logged


def _log_model(spec: DomainSpec, pipeline: Pipeline, x_example: pd.DataFrame):
    """Log and register the pipeline so that both sklearn and pyfunc loaders score raw feature frames.

    pyfunc predicts probabilities (`predict_proba`), matching the signature's output.
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    return mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(x_example, pipeline.predict_proba(x_example.head(100))),
        input_example=x_example.head(5),
        pip_requirements=list(tracking.pip_requirements()),  # saves ~15 s of dependency inference
        pyfunc_predict_fn="predict_proba",
        serialization_format="skops",
        skops_trusted_types=_skops_types(pipeline),
        registered_model_name=spec.name,
    )


def _run_for(experiment_id: str, batch_id: str, role: str) -> str | None:
    """The run an earlier attempt for (`batch_id`, `role`) started, if any: a retry logs into it."""
    import mlflow

    from continuum.batches import check_batch_id

    found = mlflow.MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.batch_id = '{check_batch_id(batch_id)}' and tags.role = '{role}'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


def registered(spec: DomainSpec, batch_id: str, role: str) -> TrainingResult | None:
    """The version an earlier attempt registered for (`batch_id`, `role`), as a TrainingResult; else None."""
    import mlflow

    from continuum import registry

    ref = registry.find_version(spec.name, batch_id, role)
    if ref is None:
        return None
    client = mlflow.MlflowClient()
    run = client.get_run(ref.run_id)
    expected = {"domain": spec.name, "batch_id": batch_id, "role": role}
    if run.data.tags.get("spec_hash"):  # the spec it was trained under, from the run's creation
        expected["spec_hash"] = run.data.tags["spec_hash"]
    for key, value in expected.items():
        if ref.tags.get(key) != value:  # killed before the version's tags were written
            client.set_model_version_tag(spec.name, ref.version, key, value)
    experiment = client.get_experiment(run.info.experiment_id).name
    return TrainingResult(
        run_id=ref.run_id or "",
        model_uri=f"models:/{spec.name}/{ref.version}",
        version=ref.version,
        metrics=ref.metrics,
        experiment=experiment,
    )


def train_and_register(
    spec: DomainSpec,
    train_frame: pd.DataFrame,
    holdout_frame: pd.DataFrame,
    *,
    batch_id: str,
    dataset_uri: str,
    tags: dict[str, str] | None = None,
    pipeline: Pipeline | None = None,
    params: dict[str, Any] | None = None,
    search: SearchResult | None = None,
) -> TrainingResult:
    """Fit on `train_frame`, evaluate on `holdout_frame`, and register a version of `spec.name` once.

    One MLflow run (`train-<batch_id>`) in the domain's experiment holds the
    params, both datasets as inputs, the holdout metrics (linked to the model and
    the holdout dataset) and the model, registered under the domain's name. No
    alias is set here: blessing decides. A `pipeline` given already fitted (a
    rules baseline, or a challenger the caller fitted) is logged as it is; the
    `search` that tuned it goes to the run too (chosen params as `model.<param>`,
    `search_best_cv_score`, and every candidate in search.json).

    Keyed by (`batch_id`, `tags["role"]`): when an earlier attempt already
    registered that version it is returned unchanged, and an attempt killed before
    registering is finished in its own run, so retries never add versions.
    """
    import mlflow
    from threadpoolctl import threadpool_limits

    role = (tags or {}).get("role", "model")
    done = registered(spec, batch_id, role)
    if done is not None:
        log.info("event=model_already_registered domain=%s batch_id=%s role=%s version=%s", spec.name, batch_id, role, done.version)
        return done
    started = time.monotonic()
    experiment_id = tracking.ensure_experiment(spec.name)
    # spec_hash: the contract the version was trained under (DomainSpec.content_hash), on its run and version.
    run_tags = {"domain": spec.name, "batch_id": batch_id, "role": role, "spec_hash": spec.content_hash()}
    run_tags |= tags or {}
    earlier = _run_for(experiment_id, batch_id, role)
    run_context = (
        mlflow.start_run(run_id=earlier) if earlier else mlflow.start_run(run_name=f"train-{batch_id}", tags=run_tags)
    )
    with warnings.catch_warnings(), run_context as run:
        # The validation gate keeps nulls out of int columns, so MLflow's hint about them is noise here.
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
        )
        searched = search.mlflow_params() if search is not None else {}
        if earlier is None:  # params are write-once; an earlier attempt logged the same ones
            mlflow.log_params(_params(spec, train_frame, holdout_frame) | searched | (params or {}))
        if search is not None:
            mlflow.log_metric("search_best_cv_score", search.best_cv_score)
            mlflow.log_text(search.model_dump_json(indent=2), "search.json")
        frames = {"training": train_frame, "holdout": holdout_frame}
        datasets = _log_datasets(spec, frames, batch_id, dataset_uri)
        pipeline = pipeline if pipeline is not None else fit(spec, train_frame)
        with threadpool_limits(limits=threads()):
            scores = metrics.evaluate(spec, pipeline, holdout_frame)
            _log_evaluation(spec, pipeline, holdout_frame)
            info = _log_model(spec, pipeline, features(spec, train_frame))
        mlflow.log_metrics(scores, model_id=info.model_id, dataset=datasets["holdout"])
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        for key, value in run_tags.items():  # the version carries its role (baseline, challenger) too
            client.set_model_version_tag(spec.name, version, key, value)

    log.info(
        "event=model_registered domain=%s batch_id=%s version=%s run_id=%s seconds=%.1f %s",
        spec.name,
        batch_id,
        version,
        run.info.run_id,
        time.monotonic() - started,
        " ".join(f"{k}={v:.4f}" for k, v in scores.items()),
    )
    return TrainingResult(
        run_id=run.info.run_id,
        model_uri=f"models:/{spec.name}/{version}",
        version=version,
        metrics=scores,
        experiment=mlflow.get_experiment(experiment_id).name,
    )
