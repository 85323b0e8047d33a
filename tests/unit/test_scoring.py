"""Batch scoring per kind on a small fitted pipeline, and the smoke test's catches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from continuum import scoring, training
from continuum.specs import DomainSpec

REASONS = ["reason_1", "reason_2", "reason_3"]


def _spec(kind: str = "probability", id_column: str | None = "id", **extra) -> DomainSpec:
    columns = [
        {"name": "user_id", "type": "string"},
        {"name": "item_id", "type": "string"},
        {"name": "x", "type": "float"},
        {"name": "label", "type": "int", "allowed": [0, 1]},
    ]
    if id_column:
        columns.insert(0, {"name": id_column, "type": "string"})
    return DomainSpec.model_validate(
        {
            "name": "score_test",
            "description": "test",
            "owner": "tests",
            "data": {"target": "label", "id_column": id_column, "columns": columns},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
            "scoring": {"kind": kind, **extra},
        }
    )


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    return pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "user_id": [f"u{i % 4}" for i in range(n)],
            "item_id": [f"i{i}" for i in range(n)],
            "x": x,
            "label": (x + rng.normal(0, 0.5, n) > 0).astype(int),
        }
    )


@pytest.fixture(scope="module")
def model():
    # user_id/item_id are features too (one-hot), which is what a recommender's pair model sees.
    return training.fit(_spec(), _frame())


def _positive(model, frame):
    return model.predict_proba(frame[["user_id", "item_id", "x"]])[:, 1]


def test_probability_keeps_ids_and_order(model):
    frame = _frame(20, seed=1)
    before = frame.copy()
    out = scoring.score(_spec(), model, frame)
    assert list(out.columns) == ["id", "probability"]
    assert out["id"].tolist() == frame["id"].tolist()
    assert np.allclose(out["probability"], _positive(model, frame))
    pd.testing.assert_frame_equal(frame, before)  # the input frame is not changed


def test_only_feature_columns_reach_the_model(model):
    frame = _frame(20, seed=1)
    noisy = frame.assign(unexpected=1.0).drop(columns=["label"])[
        ["unexpected", "x", "item_id", "user_id", "id"]
    ]
    a = scoring.score(_spec(), model, frame)["probability"]
    b = scoring.score(_spec(), model, noisy)["probability"]
    assert np.allclose(a, b)


def test_a_frame_without_the_id_column_uses_the_index(model):
    frame = _frame(10, seed=2).drop(columns=["id"]).set_axis(range(100, 110))
    out = scoring.score(_spec(), model, frame)
    assert out["id"].tolist() == list(range(100, 110))
    no_id_spec = _spec(id_column=None)
    assert list(scoring.score(no_id_spec, model, frame).columns) == ["index", "probability"]


def test_premium_is_base_premium_times_clipped_risk_factor(model):
    frame = _frame(50, seed=3)
    p = _positive(model, frame)
    out = scoring.score(_spec("premium", base_premium=400.0), model, frame, reference=_frame())
    assert list(out.columns) == ["id", "claim_probability", "risk_factor", "premium", *REASONS]
    expected_risk = np.clip(p / p.mean(), 0.5, 3.0)
    assert np.allclose(out["risk_factor"], expected_risk)
    assert np.allclose(out["premium"], np.round(400.0 * expected_risk, 2))
    assert out["risk_factor"].between(0.5, 3.0).all()
    assert out["risk_factor"].min() == 0.5  # low-probability policies hit the lower bound

    fixed = scoring.score(_spec("premium", base_premium=400.0, base_rate=0.25), model, frame, reference=_frame())
    assert np.allclose(fixed["risk_factor"], np.clip(p / 0.25, 0.5, 3.0))


def test_premium_without_base_premium_says_which_key_to_add(model):
    with pytest.raises(ValueError, match="scoring.base_premium"):
        scoring.score(_spec("premium"), model, _frame(5))


def test_fraud_flags_scores_at_or_above_the_threshold(model):
    frame = _frame(50, seed=4)
    out = scoring.score(_spec("fraud", threshold=0.8), model, frame, reference=_frame())
    assert list(out.columns) == ["id", "fraud_score", "flag", *REASONS]
    assert (out["flag"] == (out["fraud_score"] >= 0.8)).all()
    assert 0 < out["flag"].sum() < len(out)
    default = scoring.score(_spec("fraud"), model, frame, reference=_frame())
    assert default["flag"].sum() > out["flag"].sum()  # the default threshold is 0.5


def test_recommendations_are_the_top_k_items_per_user(model):
    frame = _frame(40, seed=5)
    p = _positive(model, frame)
    out = scoring.score(
        _spec("recommendations", k=3, user_column="user_id", item_column="item_id"), model, frame
    )
    assert list(out.columns) == ["user", "rank", "item", "score"]
    assert sorted(out["user"].unique()) == ["u0", "u1", "u2", "u3"]
    for user, group in out.groupby("user"):
        assert group["rank"].tolist() == [1, 2, 3]
        mask = (frame["user_id"] == user).to_numpy()
        best = frame.loc[mask, "item_id"].to_numpy()[np.argsort(-p[mask])[:3]]
        assert group["item"].tolist() == best.tolist()
        assert group["score"].is_monotonic_decreasing


def test_recommendations_need_their_columns(model):
    spec = _spec("recommendations", user_column="customer")
    with pytest.raises(ValueError, match="customer"):
        scoring.score(spec, model, _frame(5))


def test_smoke_test_passes_a_real_model(model):
    scoring.smoke_test(_spec(), model, _frame(10))


class _Broken:
    """A model whose predict_proba returns whatever the test asks for."""

    classes_ = np.array([0, 1])

    def __init__(self, output):
        self.output = output

    def predict_proba(self, x):
        if isinstance(self.output, Exception):
            raise self.output
        return self.output(len(x))


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda n: np.full((n, 2), np.nan), "NaN"),
        (lambda n: np.full((n, 3), 1 / 3), "shape"),
        (lambda n: np.full(n, 0.5), "shape"),
        (lambda n: np.full((n - 1, 2), 0.5), "shape"),
        (lambda n: np.column_stack([np.full(n, -0.5), np.full(n, 1.5)]), "outside"),
        (RuntimeError("model file is corrupt"), "model file is corrupt"),
    ],
)
def test_smoke_test_catches_broken_models(output, message):
    with pytest.raises(scoring.SmokeTestFailed, match=message):
        scoring.smoke_test(_spec(), _Broken(output), _frame(10))


def test_smoke_test_reports_missing_feature_columns(model):
    with pytest.raises(scoring.SmokeTestFailed, match="x"):
        scoring.smoke_test(_spec(), model, _frame(10).drop(columns=["x"]))


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_an_infinite_score_refuses_the_shadow_promotion(model, value):
    def one_infinite(n):
        proba = np.full((n, 2), 0.5)
        proba[3] = [0.5, value]
        return proba

    reasons, shift = scoring.shadow_check(_spec(), _Broken(one_infinite), model, _frame(20))
    assert reasons == ["challenger gave 1 non-finite score(s) (NaN or inf) on 20 rows"] and shift is None
    assert scoring.shadow_check(_spec(), model, model, _frame(20)) == ([], 0.0)  # a sound challenger passes


# --- output checks and the recorded distribution ---------------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra", "column", "bad", "message"),
    [
        ("probability", {}, "probability", np.nan, "probability has 1 NaN or inf"),
        ("probability", {}, "probability", np.inf, "probability has 1 NaN or inf"),
        ("probability", {}, "probability", 1.2, r"probability has 1 values outside \[0, 1\], e.g. 1.2"),
        ("fraud", {}, "fraud_score", -0.1, r"fraud_score has 1 values outside \[0, 1\]"),
        ("premium", {"base_premium": 400.0}, "premium", 0.0, r"premium has 1 values outside \(0, inf\]"),
        ("premium", {"base_premium": 400.0}, "risk_factor", 7.0, r"risk_factor has 1 values outside \[0.5, 3\]"),
        ("recommendations", {}, "score", np.nan, "score has 1 NaN or inf"),
    ],
)
def test_score_checks_name_the_column_and_what_is_wrong(model, kind, extra, column, bad, message):
    spec = _spec(kind, **extra)
    frame = _frame(30, seed=6)
    scores = scoring.score(spec, model, frame, reference=_frame())
    scoring.check_scores(spec, scores)  # the real scores pass
    scores.loc[3, column] = bad
    with pytest.raises(scoring.ScoreCheckFailed, match=message) as caught:
        scoring.check_scores(spec, scores, where=" batch b1")
    assert str(caught.value).startswith("score_test batch b1: scores not written")


def test_a_score_check_failure_reaches_the_on_call_alert_with_what_was_wrong(model):
    from types import SimpleNamespace

    from continuum import alerts

    spec = _spec("premium", base_premium=-1.0)  # a spec typo prices every policy below zero
    scores = scoring.score(spec, model, _frame(20), reference=_frame())
    with pytest.raises(scoring.ScoreCheckFailed) as caught:
        scoring.check_scores(spec, scores, where=" batch 00000000000000b1 (champion v3)")
    ti = SimpleNamespace(task_id="score", dag_id="score_test_decide", try_number=3)
    alert = alerts.alert_from_context({"exception": caught.value, "ti": ti})
    assert alert.kind == "task_failed"
    assert "premium has 20 values outside (0, inf]" in alert.exception
    assert "premium has 20 values outside" in alerts.format_text(alert)


def test_summary_records_mean_quantiles_and_share_flagged(model):
    spec = _spec("fraud", threshold=0.5)
    scores = scoring.score(spec, model, _frame(400, seed=7), reference=_frame())
    summary = scoring.summarize(spec, scores)
    values = scores["fraud_score"]
    assert summary.rows == 400 and summary.flagged == pytest.approx(scores["flag"].mean())
    assert summary.columns["fraud_score"]["mean"] == pytest.approx(values.mean())
    assert summary.columns["fraud_score"]["p50"] == pytest.approx(values.median())
    assert list(summary.columns["fraud_score"]) == ["mean", "p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    premium = _spec("premium", base_premium=400.0)
    summary = scoring.summarize(premium, scoring.score(premium, model, _frame(50), reference=_frame()))
    assert set(summary.columns) == {"claim_probability", "risk_factor", "premium"} and summary.flagged is None
