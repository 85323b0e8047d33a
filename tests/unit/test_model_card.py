"""The model card: every section built from what the registry, the run and the decision hold;
written to the version's run and printed by `continuum card`."""

from __future__ import annotations

import json

import pytest

from continuum import cli, decision, model_card, simulate, training
from continuum.specs import get_domain

DOMAIN = "insurance_claim_risk"
B1, B2 = "00000000000000b1", "00000000000000b2"


def _spec():
    base = get_domain(DOMAIN)
    return base.model_copy(update={"model": base.model.model_copy(update={"params": {"max_iter": 20, "random_state": 0}})})


def _fairness_report(young_accuracy: float) -> dict:
    row = {"rows": 120, "selection_rate": 0.3, "true_positive_rate": 0.6, "false_positive_rate": 0.2, "accuracy": 0.9}
    return {
        "selected": "a surcharge: risk factor above 1",
        "rows": 400,
        "columns": {
            "driver_age_band": {
                "groups": {"18-24": {**row, "rows": 40, "accuracy": young_accuracy}, "40-64": row},
                "measures": {"primary_metric_ratio": young_accuracy / 0.9},
            }
        },
    }


def _inputs(record: dict | None, role: str = "challenger", young_accuracy: float = 0.81):
    spec = _spec()
    version = {"number": "2", "tags": {"role": role, "batch_id": B2, "spec_hash": spec.content_hash()}, "registered_at": "2026-01-02T03:04:05+00:00"}
    run = {
        "run_id": "r2",
        "params": {"estimator": spec.model.estimator, "model.max_iter": "20", "window": f"{B1},{B2}", "train_rows": "3000"},
        "metrics": {"accuracy": 0.9, "roc_auc": 0.8, "importance.vehicle_power": 0.02, "champion_accuracy": 0.88},
        "datasets": [
            {"context": "holdout", "name": f"{DOMAIN}-{B2}-holdout", "digest": "d-hold", "rows": 500, "source": "s3://v/b2"},
            {"context": "training", "name": f"{DOMAIN}-{B2}-training", "digest": "d-train", "rows": 3000, "source": "s3://v/b2"},
        ],
    }
    evaluation = {
        "fairness": _fairness_report(young_accuracy),
        "segments": {"column": "region", "segments": {"north": {"accuracy": 0.91, "roc_auc": float("nan"), "rows": 200.0}}},
        "importance": {"score": "brier", "rows": 500, "repeats": 3, "seed": 0, "features": {
            "vehicle_power": {"mean": 0.02, "std": 0.001}, "region": {"mean": -0.001, "std": 0.002}}},
    }
    return spec, version, run, evaluation, record


def _record(promoted: bool) -> dict:
    record = decision.DecisionRecord(
        domain=DOMAIN,
        batch_id=B2,
        champion_before=decision.ModelVersion(version="1"),
        challenger=decision.Challenger(
            version="2",
            blessed=promoted,
            why_not=[] if promoted else ["accuracy 0.8 below floor 0.85"],
            flags=["feature region has permutation importance -0.001 <= 0 on the holdout"],
        ),
        promotion=decision.Promotion(outcome="promoted", previous="1")
        if promoted
        else decision.Promotion(outcome="not_blessed", reasons=["accuracy 0.8 below floor 0.85"]),
        extra={"champion_on_holdout": {"accuracy": 0.88}},
    )
    return record.model_dump(mode="json")


def test_a_challenger_card_has_every_section_with_its_facts():
    spec, *rest = _inputs(_record(promoted=True))
    card = model_card.build(spec, *rest)
    assert set(model_card.SECTIONS) <= set(card)
    assert card["intended_use"] == {"description": spec.description, "owner": "risk-team", "scoring": "premium"}
    training_part = card["training"]
    assert training_part["window"] == [B1, B2] and training_part["estimator"] == spec.model.estimator
    assert [d["digest"] for d in training_part["datasets"]] == ["d-hold", "d-train"]
    assert training_part["spec_hash"] == training_part["spec_hash_now"] == spec.content_hash()
    assert card["metrics"]["overall"] == {"accuracy": 0.9, "roc_auc": 0.8}  # importance and champion metrics apart
    assert card["metrics"]["segments"]["segments"]["north"]["roc_auc"] is None  # NaN becomes JSON null
    [gate] = card["fairness"]["gates"]  # the shipped gate: primary_metric_ratio >= 0.6
    assert gate["metric"] == "primary_metric_ratio" and gate["passed"] and gate["value"] == pytest.approx(0.9)
    assert card["importance"]["flags"][0].startswith("feature region has permutation importance -0.001")
    assert card["blessing"]["blessed"] is True and card["blessing"]["judged_against"] == "1"
    assert card["blessing"]["champion_on_holdout"] == {"accuracy": 0.88}
    assert card["promotion"] == {"outcome": "promoted", "replaced": "1", "champion_kept": None, "reasons": []}
    assert card["limitations"] == spec.limitations and card["limitations"]
    json.dumps(card, allow_nan=False)  # strict JSON

    text = model_card.to_markdown(card)
    for heading in ("## Intended use", "## Training", "## Metrics", "## Fairness", "## Feature importance",
                    "## Blessing", "## Promotion", "## Known limitations"):
        assert heading in text
    assert f"| training | {DOMAIN}-{B2}-training | d-train | 3000 | s3://v/b2 |" in text
    assert "| 18-24 | 40 | 0.3 | 0.6 | 0.2 | 0.81 |" in text
    assert "| primary_metric_ratio | driver_age_band | 0.6 | - | 0.9 | pass |" in text
    assert "Replaced champion: v1." in text and spec.limitations[0] in text


def test_a_refused_challenger_card_says_why_and_that_the_champion_stays():
    spec, version, run, evaluation, record = _inputs(_record(promoted=False), young_accuracy=0.45)
    card = model_card.build(spec, version, run, evaluation, record)
    assert card["blessing"]["blessed"] is False and card["blessing"]["why_not"] == ["accuracy 0.8 below floor 0.85"]
    assert card["promotion"]["outcome"] == "not_blessed" and card["promotion"]["replaced"] is None
    assert card["promotion"]["champion_kept"] == "1"
    [gate] = card["fairness"]["gates"]
    assert gate["passed"] is False and "for driver_age_band=18-24" in gate["reason"]
    text = model_card.to_markdown(card)
    assert "**not blessed**: accuracy 0.8 below floor 0.85" in text and "The champion stays v1." in text
    assert "fail: fairness primary_metric_ratio on driver_age_band 0.5 below min 0.6" in text


def test_a_baseline_card_says_nobody_judged_it_and_what_changed_in_the_spec():
    spec, version, run, evaluation, _ = _inputs(None, role="baseline")
    version["tags"]["spec_hash"] = "0" * 64
    card = model_card.build(spec, version, {**run, "params": {"baseline": "continuum.baselines.X"}}, evaluation)
    assert card["blessing"]["judged"] is False and "first champion without judging" in card["blessing"]["why"]
    assert card["promotion"]["replaced"] is None and card["training"]["window"] == [B2]
    assert card["training"]["estimator"] == "continuum.baselines.X"
    text = model_card.to_markdown(card)
    assert "**not judged**" in text and "Replaced champion: none (first champion)." in text
    assert f"(the spec has changed since: now `{spec.content_hash()}`)" in text


def test_published_card_is_in_the_run_tagged_on_the_version_and_printed_by_the_cli(mlflow_store, capsys):
    import mlflow

    spec = _spec()
    train, holdout = training.split(simulate.generate(DOMAIN, 800, seed=5), spec)
    result = training.train_and_register(spec, train, holdout, batch_id=B1, dataset_uri="s3://x/b1.parquet", tags={"role": "challenger"})
    record = decision.DecisionRecord(
        domain=DOMAIN,
        batch_id=B1,
        challenger=decision.Challenger(version=result.version, run_id=result.run_id, blessed=True),
        promotion=decision.Promotion(outcome="promoted"),
    )
    link = model_card.publish(spec, result.version, record)
    assert link == f"runs:/{result.run_id}/model_card.md"
    client = mlflow.MlflowClient()
    assert client.get_model_version(DOMAIN, result.version).tags["model_card"] == link
    card = model_card.read(DOMAIN, result.version)
    run = client.get_run(result.run_id)
    assert sorted(d["digest"] for d in card["training"]["datasets"]) == sorted(i.dataset.digest for i in run.inputs.dataset_inputs)
    assert card["training"]["spec_hash"] == spec.content_hash()
    assert set(card["fairness"]["report"]["columns"]) == {"driver_age_band"}
    assert set(card["importance"]["features"]) == {c.name for c in spec.data.feature_columns}
    assert mlflow.artifacts.load_text(link) == model_card.to_markdown(card)

    # No champion yet: the CLI says so; with --version it prints the card.
    assert cli.main(["card", DOMAIN]) == 2
    assert "has no champion yet" in capsys.readouterr().err
    assert cli.main(["card", DOMAIN, "--version", result.version]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# Model card: {DOMAIN} v{result.version} (challenger)") and "## Known limitations" in out
    from continuum import registry

    registry.promote(DOMAIN, result.version)
    assert cli.main(["card", DOMAIN, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == result.version


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["card", "no_such_domain"], "unknown domain 'no_such_domain'"),
        (["card", DOMAIN, "--version", "9"], f"{DOMAIN} has no version 9"),
        (["card", DOMAIN, "--version", "v2"], "--version 'v2' is not a version number"),
    ],
)
def test_card_errors_are_one_line_and_exit_2(argv, message, capsys, s3, mlflow_store):
    import mlflow

    mlflow.MlflowClient().create_registered_model(DOMAIN)  # the model exists, version 9 does not
    capsys.readouterr()  # MLflow's own lines from creating the store
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_version_without_a_card_says_why(capsys, mlflow_store):
    spec = _spec()
    train, holdout = training.split(simulate.generate(DOMAIN, 600, seed=6), spec)
    result = training.train_and_register(spec, train, holdout, batch_id=B2, dataset_uri="s3://x/b2.parquet")
    assert cli.main(["card", DOMAIN, "--version", result.version]) == 2
    assert "has no model card yet: its batch's decision is not finished" in capsys.readouterr().err


def test_a_card_without_protected_columns_or_segments_says_nothing_was_measured():
    spec, version, run, evaluation, record = _inputs(_record(promoted=True))
    card = model_card.build(spec, version, run, {**evaluation, "fairness": None, "segments": None}, record)
    assert card["fairness"] == {"report": None, "gates": []} and card["metrics"]["segments"] is None
    assert "No protected column is declared" in model_card.to_markdown(card)
