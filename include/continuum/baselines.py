"""Baselines: the rules a domain ran before machine learning, and the simple models every challenger must beat.

`reference_models` fits two simple models on the challenger's own training window, for
every domain: the class prior (scikit-learn's DummyClassifier, which knows nothing but the
positive rate) and a logistic regression on the same preprocessed features. Blessing scores
them on the challenger's holdout (`blessing.min_gain_over_baseline`). They are never
registered: only a spec's rules baseline below becomes a champion.


A spec's `baseline` section names a rules estimator (the "DevOps phase" system:
code and rules, no learning), so the first ML challenger must beat the shop's
existing rules on the same holdout before it may replace them. A rules model
reads raw columns by name, so `build_baseline_pipeline` does not put
`training.build_pipeline`'s imputation and one-hot encoding in front of it; the
pipeline still takes the same raw frame the batch scorer passes (extra columns
are ignored), and logs to MLflow like any other scikit-learn pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.base import BaseEstimator, ClassifierMixin

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from continuum.specs import DomainSpec


class CategoryPopularityBaseline(ClassifierMixin, BaseEstimator):
    """Purchase score = the item's recent purchase rate, times `boost` when its category is the user's favourite.

    `fit` learns nothing but the classes: the rule is the shop's, not the data's.
    A missing popularity counts as 0 (an item with no recorded sales), so a new
    item is ranked last rather than breaking the scorer.
    """

    def __init__(
        self,
        popularity_column: str = "item_popularity",
        category_column: str = "item_category",
        preferred_column: str = "user_preferred_category",
        boost: float = 2.0,
    ):
        self.popularity_column = popularity_column
        self.category_column = category_column
        self.preferred_column = preferred_column
        self.boost = boost

    def fit(self, X: pd.DataFrame, y=None):
        import numpy as np

        if y is None:
            raise ValueError("CategoryPopularityBaseline.fit needs the labels (y) to know the classes")
        self._columns(X)
        self.classes_ = np.unique(np.asarray(y))
        if len(self.classes_) != 2:
            raise ValueError(f"CategoryPopularityBaseline needs two classes, got {self.classes_.tolist()}")
        return self

    def _columns(self, X) -> None:
        names = (self.popularity_column, self.category_column, self.preferred_column)
        columns = getattr(X, "columns", None)
        if columns is None:
            raise ValueError("CategoryPopularityBaseline reads columns by name: pass a pandas DataFrame")
        missing = [name for name in names if name not in columns]
        if missing:
            raise ValueError(
                f"CategoryPopularityBaseline: the frame lacks column(s) {missing}; check baseline.params"
            )

    def rule_scores(self, X: pd.DataFrame):
        """The rule's score in [0, 1] per row."""
        import numpy as np
        import pandas as pd

        self._columns(X)
        popularity = pd.to_numeric(X[self.popularity_column], errors="coerce").fillna(0.0).to_numpy("float64")
        # As text: categorical columns with different category lists still compare by value.
        match = (
            X[self.category_column].astype(str).to_numpy() == X[self.preferred_column].astype(str).to_numpy()
        )
        return np.clip(popularity * np.where(match, float(self.boost), 1.0), 0.0, 1.0)

    def predict_proba(self, X: pd.DataFrame):
        import numpy as np

        s = self.rule_scores(X)
        return np.column_stack([1.0 - s, s])

    def predict(self, X: pd.DataFrame):
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def make_baseline(spec: DomainSpec):
    """The estimator `baseline.estimator` names, with `baseline.params`."""
    if spec.baseline is None:
        raise ValueError(f"{spec.name}: the spec has no baseline section; add baseline.estimator to use one")
    from continuum.training import instantiate

    return instantiate(spec, "baseline", "continuum.baselines.CategoryPopularityBaseline")


def build_baseline_pipeline(spec: DomainSpec) -> Pipeline:
    """Pipeline([("model", baseline)]): raw features in, no preprocessing, so the rule sees real column values."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("model", make_baseline(spec))])


def fit_baseline(spec: DomainSpec, frame: pd.DataFrame) -> Pipeline:
    """The spec's baseline pipeline fitted on a labelled frame (ready for `training.train_and_register(pipeline=...)`)."""
    from continuum import training

    target = spec.data.target
    if target not in frame.columns:
        raise ValueError(
            f"{spec.name}: cannot fit the baseline without the label column '{target}' (data.target)"
        )
    return build_baseline_pipeline(spec).fit(training.features(spec, frame), frame[target])


REFERENCE_MODELS = ("class_prior", "logistic_regression")


def reference_models(spec: DomainSpec, frame: pd.DataFrame) -> dict[str, Pipeline]:
    """The class prior and a logistic regression, fitted on a labelled frame (the challenger's training window).

    Both go through `training.build_pipeline`, so they see exactly the challenger's input
    features (never keys, protected columns or the label); the regression is scaled and
    seeded like any linear challenger would be.
    """
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from continuum import training

    estimators = {
        "class_prior": DummyClassifier(strategy="prior"),
        "logistic_regression": training.seeded(LogisticRegression(max_iter=1000), spec.training.seed),
    }
    x, y = training.features(spec, frame), frame[spec.data.target]
    with threadpool_limits(limits=training.threads()):
        return {name: training.build_pipeline(spec, estimator).fit(x, y) for name, estimator in estimators.items()}
