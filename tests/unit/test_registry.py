"""Champion/previous aliases on a real SQLite MLflow registry, and schedule intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from continuum import registry

NAME = "tiny_domain"


def _register(name: str, count: int) -> list[str]:
    """`count` versions of a tiny fitted LogisticRegression, each from its own run with an accuracy."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from continuum import tracking

    tracking.ensure_experiment(name)  # artefacts in the test's S3 bucket, not ./mlruns
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    versions = []
    for i in range(count):
        with mlflow.start_run():
            mlflow.log_metric("accuracy", 0.8 + i / 100)
            info = mlflow.sklearn.log_model(
                model, name="model", registered_model_name=name, pip_requirements=["scikit-learn"]
            )
        versions.append(str(info.registered_model_version))
    return versions


def _aliases(name: str) -> dict[str, str]:
    import mlflow

    return {k: str(v) for k, v in mlflow.MlflowClient().get_registered_model(name).aliases.items()}


def test_unknown_model_and_missing_aliases_read_as_none(mlflow_store):
    assert registry.champion("never_trained") is None
    assert registry.previous("never_trained") is None
    assert registry.champion_age("never_trained") is None
    _register(NAME, 1)
    assert registry.champion(NAME) is None and registry.previous(NAME) is None


def test_promote_moves_old_champion_to_previous_and_rollback_restores_it(mlflow_store):
    v1, v2, v3 = _register(NAME, 3)

    assert registry.promote(NAME, v1) == {"champion": v1, "previous": None}
    assert _aliases(NAME) == {"champion": v1}
    first = registry.champion(NAME)
    assert first.version == v1 and first.metrics == {"accuracy": pytest.approx(0.8)}
    assert first.created_at.tzinfo is not None and first.run_id

    assert registry.promote(NAME, v2) == {"champion": v2, "previous": v1}
    assert registry.promote(NAME, v3) == {"champion": v3, "previous": v2}
    assert _aliases(NAME) == {"champion": v3, "previous": v2}
    assert registry.previous(NAME).metrics["accuracy"] == pytest.approx(0.81)

    assert registry.rollback(NAME) == {"champion": v2, "rolled_back": v3}
    assert _aliases(NAME) == {"champion": v2}  # v3 lost its alias, and there is no previous any more
    import mlflow

    assert "rolled_back_at" in mlflow.MlflowClient().get_model_version(NAME, v3).tags
    with pytest.raises(registry.RegistryError, match=f"no previous champion to roll back to for {NAME}"):
        registry.rollback(NAME)


def test_promoting_the_champion_again_changes_nothing(mlflow_store):
    v1, v2 = _register(NAME, 2)
    registry.promote(NAME, v1)
    registry.promote(NAME, v2)
    assert registry.promote(NAME, v2) == {"champion": v2, "previous": v1}
    assert _aliases(NAME) == {"champion": v2, "previous": v1}  # v2 did not become its own previous


def test_rollback_without_any_champion_and_promote_of_unknown_version_fail_clearly(mlflow_store):
    with pytest.raises(registry.RegistryError, match="no previous champion"):
        registry.rollback("never_trained")
    _register(NAME, 1)
    with pytest.raises(registry.RegistryError, match="no such registered version"):
        registry.promote(NAME, "7")


def test_load_champion_returns_the_fitted_pipeline_and_age_drives_staleness(mlflow_store):
    with pytest.raises(registry.RegistryError, match="no champion"):
        registry.load_champion(NAME)
    (v1,) = _register(NAME, 1)
    registry.promote(NAME, v1)
    model = registry.load_champion(NAME)
    assert model.predict([[0.0], [3.0]]).tolist() == [0, 1]

    created = registry.champion(NAME).created_at
    assert registry.champion_age(NAME, now=created + timedelta(days=2)) == timedelta(days=2)
    assert not registry.is_stale(NAME, "@weekly", now=created + timedelta(days=6))
    assert registry.is_stale(NAME, "@weekly", now=created + timedelta(days=7))
    assert registry.is_stale(NAME, "0 6 * * *", now=created + timedelta(days=1, minutes=1))
    assert not registry.is_stale(NAME, None, now=created + timedelta(days=3650))


def test_a_domain_without_champion_is_stale_on_a_schedule(mlflow_store):
    assert registry.is_stale("never_trained", "@daily")
    assert not registry.is_stale("never_trained", "@once")


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("@hourly", timedelta(hours=1)),
        ("@daily", timedelta(days=1)),
        ("@weekly", timedelta(days=7)),
        ("@monthly", timedelta(days=31)),
        ("@yearly", timedelta(days=366)),
        ("*/15 * * * *", timedelta(minutes=15)),
        ("0 6 * * 1", timedelta(days=7)),
        ("0 9 * * 1-5", timedelta(days=3)),  # Friday to Monday is the longest gap
        ("0 0 1 * *", timedelta(days=31)),
        (None, None),
        ("@once", None),
    ],
)
def test_schedule_interval(schedule, expected):
    assert registry.schedule_interval(schedule) == expected


@pytest.mark.parametrize("schedule", ["@fortnightly", "every day", "61 * * * *"])
def test_unknown_schedules_are_rejected_with_the_options(schedule):
    with pytest.raises(ValueError, match="cron expression"):
        registry.schedule_interval(schedule)


def test_model_ref_times_are_utc():
    ref = registry.ModelRef(name="x", version="1", created_at=datetime(2024, 1, 1, tzinfo=UTC))
    assert ref.metrics == {} and ref.created_at.utcoffset() == timedelta(0)


def test_promotion_is_a_compare_and_set_against_the_judged_champion(mlflow_store):
    v1, v2, v3 = _register(NAME, 3)
    registry.promote(NAME, v1, expected=None)
    registry.promote(NAME, v3)  # the champion moves (e.g. a manual promote) after v2 was judged against v1
    with pytest.raises(registry.ChampionMoved, match=f"champion is v{v3} but the challenger was judged against v{v1}"):
        registry.promote(NAME, v2, expected=v1)
    assert _aliases(NAME) == {"champion": v3, "previous": v1}  # nothing moved
    assert registry.promote(NAME, v2, expected=v3) == {"champion": v2, "previous": v3}
    with pytest.raises(registry.ChampionMoved):
        registry.promote(NAME, v1, expected=None)  # "no champion" is an expectation too


def test_promotion_reads_the_roles_back_and_fails_when_they_did_not_stick(mlflow_store, monkeypatch):
    v1, v2 = _register(NAME, 2)
    registry.promote(NAME, v1)
    monkeypatch.setattr(registry, "_set_roles", lambda *args: None)  # a store that dropped the writes
    with pytest.raises(registry.RegistryError, match=f"read back as champion=v{v1}"):
        registry.promote(NAME, v2, expected=v1)


def test_restore_puts_both_roles_back_exactly(mlflow_store):
    v1, v2, v3 = _register(NAME, 3)
    registry.promote(NAME, v1)
    registry.promote(NAME, v2)
    registry.promote(NAME, v3)
    assert registry.restore(NAME, champion=v2, previous=v1, rolled_back=v3) == {"champion": v2, "previous": v1}
    assert _aliases(NAME) == {"champion": v2, "previous": v1}
    import mlflow

    assert "rolled_back_at" in mlflow.MlflowClient().get_model_version(NAME, v3).tags
    registry.restore(NAME, champion=None, previous=None)  # before the very first promotion
    assert _aliases(NAME) == {}
