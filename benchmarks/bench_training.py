"""Training and scoring cost: Continuum's pipeline against the bare estimator and predict_proba.

fit: `training.fit` (preprocessing from the contract, then the spec's estimator) against
the same estimator, same params and thread limit, fitted on the matrix the pipeline's
preprocessing produces (made before the timing): the ratio is the pipeline's overhead.
score: `scoring.score` (features, probabilities, premiums) against the fitted pipeline's
`predict_proba` on the raw feature frame: the ratio is what turning probabilities
into the domain's output costs. The fitted pipeline is shared through a file of the run.
"""

from __future__ import annotations

import pickle
from contextlib import contextmanager

from benchmarks import DOMAIN, WARM_UP, Comparison, Side, Sizes, data_dir, insurance_frame, ratio, times


def _model_path(train_rows: int):
    return data_dir() / f"{DOMAIN}_pipeline_{train_rows}.pkl"


@contextmanager
def fit_pipeline(train_rows: int):
    from continuum import training
    from continuum.specs import get_domain

    spec = get_domain(DOMAIN)
    frame = insurance_frame(train_rows)
    training.fit(spec, frame.head(WARM_UP))
    fitted = {}

    def run() -> dict:
        fitted["model"] = training.fit(spec, frame)
        return {"iterations": int(getattr(fitted["model"].named_steps["model"], "n_iter_", 0))}

    yield run
    if "model" in fitted:  # for the scoring comparison; written after the timing
        _model_path(train_rows).write_bytes(pickle.dumps(fitted["model"]))


@contextmanager
def fit_estimator(train_rows: int):
    from threadpoolctl import threadpool_limits

    from continuum import training
    from continuum.specs import get_domain

    spec = get_domain(DOMAIN)
    frame = insurance_frame(train_rows)
    matrix = (
        training.build_pipeline(spec).named_steps["preprocess"].fit_transform(training.features(spec, frame))
    )
    labels = frame[spec.data.target].to_numpy()
    estimator = training.make_estimator(spec)
    with threadpool_limits(limits=training.threads()):
        training.make_estimator(spec).fit(matrix[:WARM_UP], labels[:WARM_UP])

    def run() -> dict:
        with threadpool_limits(limits=training.threads()):
            estimator.fit(matrix, labels)
        return {"iterations": int(getattr(estimator, "n_iter_", 0))}

    yield run


def _model(train_rows: int):
    """The pipeline the fit comparison wrote, or one fitted here when scoring runs alone."""
    path = _model_path(train_rows)
    if path.exists():
        return pickle.loads(path.read_bytes())  # our own file, written by this run
    from continuum import training
    from continuum.specs import get_domain

    return training.fit(get_domain(DOMAIN), insurance_frame(train_rows))


@contextmanager
def score_batch(rows: int, train_rows: int):
    from continuum import scoring
    from continuum.specs import get_domain

    spec = get_domain(DOMAIN)
    model, frame = _model(train_rows), insurance_frame(rows)
    reference = insurance_frame(train_rows)  # the champion's training sample: typical values of the reason codes
    scoring.score(spec, model, frame.head(WARM_UP), reference=reference)

    def run() -> dict:
        scores = scoring.score(spec, model, frame, reference=reference)
        return {"rows": len(scores), "mean_probability": round(float(scores["claim_probability"].mean()), 6)}

    yield run


@contextmanager
def predict_proba(rows: int, train_rows: int):
    from continuum import training
    from continuum.specs import get_domain

    spec = get_domain(DOMAIN)
    model = _model(train_rows)
    features = training.features(spec, insurance_frame(rows)).copy()
    model.predict_proba(features.head(WARM_UP))

    def run() -> dict:
        p = model.predict_proba(features)[:, 1]
        return {"rows": len(p), "mean_probability": round(float(p.mean()), 6)}

    yield run


def _fit_meaning(s: dict, r: dict) -> str:
    same = "the same number of" if s["facts"]["iterations"] == r["facts"]["iterations"] else "DIFFERENT"
    x = ratio(s, r)
    verdict = "a small part of" if x < 1.25 else "a noticeable part of" if x < 2 else "more than"
    return (
        f"Fitting the whole pipeline takes {times(x)} the time of the bare estimator on a pre-encoded matrix "
        f"({s['seconds']:.1f} s vs {r['seconds']:.1f} s, {same} boosting iterations): imputation and one-hot "
        f"encoding are {verdict} the cost of the trees; its extra peak memory is the encoded copy of the frame."
    )


def _score_meaning(s: dict, r: dict) -> str:
    same = "the same" if s["facts"]["mean_probability"] == r["facts"]["mean_probability"] else "DIFFERENT"
    x = ratio(s, r)
    why = (
        "score calls predict_proba itself, so a ratio below 1 is run-to-run noise"
        if x < 1
        else "the three reason codes per premium cost one more prediction of the batch per input feature"
        " (prediction difference, continuum.reasons); the id frame and the premium columns are cheap next to that"
    )
    return (
        f"Scoring takes {times(x)} the time of predict_proba alone ({s['seconds']:.1f} s vs {r['seconds']:.1f} s, "
        f"{same} probabilities): {why}. Peak-memory ratios near 1 here are within the allocator's run-to-run noise."
    )


def comparisons(sizes: Sizes) -> list[Comparison]:
    train = {"train_rows": sizes.train_rows}
    score = {"rows": sizes.rows, **train}
    return [
        Comparison(
            case="training",
            name="fit: pipeline vs bare estimator",
            rows=sizes.train_rows,
            subject=Side("continuum.training.fit", "benchmarks.bench_training:fit_pipeline", train),
            reference=Side(
                "estimator.fit(pre-encoded matrix)", "benchmarks.bench_training:fit_estimator", train
            ),
            meaning=_fit_meaning,
            notes="HistGradientBoostingClassifier from the spec, CONTINUUM_TRAIN_THREADS threads (default 1)",
        ),
        Comparison(
            case="training",
            name="score: scoring.score vs predict_proba",
            rows=sizes.rows,
            subject=Side("continuum.scoring.score", "benchmarks.bench_training:score_batch", score),
            reference=Side(
                "pipeline.predict_proba(features)", "benchmarks.bench_training:predict_proba", score
            ),
            meaning=_score_meaning,
        ),
    ]
