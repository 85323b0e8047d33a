"""Late labels: joined to the scores, the realised metric per batch and segment, alerts, the retrain they trigger.

A small probe domain (logistic regression on two features, so its probabilities are
calibrated) is scored through the real steps (`landing`, `pipeline.run_gate`,
`pipeline.run_scoring`) against a real MLflow store and moto S3.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import probe_domain
import pytest
import yaml

from continuum import (
    alert_delivery,
    alerts,
    batches,
    decision,
    labels,
    landing,
    metrics,
    pipeline,
    registry,
    storage,
)
from continuum.specs import get_domain
from continuum.storage import Keys

PROBE = "labels_probe"
RETAIL = "labels_probe_rec"
SPEC = probe_domain.spec(
    PROBE,
    "A probe domain for late labels.",
    monitoring={"max_realised_gap": 0.05, "max_estimated_drop": 0.05},
    extra_columns=({"name": "segment", "type": "category", "allowed": ["a", "b"]},),
    blessing={"segment_column": "segment", "min_segment_rows": 20},
)


@pytest.fixture(autouse=True)
def _no_routes(monkeypatch):
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    monkeypatch.delenv(alert_delivery.ROUTES_ENV, raising=False)


@pytest.fixture
def probe(tmp_path, monkeypatch, s3):
    """The probe spec and a recommendations twin, on the domains path."""
    rec = {
        **SPEC,
        "name": RETAIL,
        "data": {
            **SPEC["data"],
            "columns": [
                *SPEC["data"]["columns"][:1],
                {"name": "user_id", "type": "int", "feature": False},
                {"name": "item_id", "type": "int", "feature": False},
                *SPEC["data"]["columns"][1:],
            ],
        },
        "scoring": {"kind": "recommendations", "k": 2},
    }
    for document in (SPEC, rec):
        (tmp_path / f"{document['name']}.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    return get_domain(PROBE)


def frame(n: int, seed: int, start: int = 0, spread: float = 1.0, weight: float = 3.0) -> pd.DataFrame:
    """Rows whose label follows a logistic model of x1 and x2 (calibrated for logistic regression)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, spread, n), rng.normal(0, spread, n)
    p = 1 / (1 + np.exp(-(weight * x1 - 2 * x2)))
    return pd.DataFrame(
        {
            "row_id": [f"r{start + i:06d}" for i in range(n)],
            "user_id": np.arange(n) // 4,
            "item_id": np.arange(n) % 4,
            "x1": x1,
            "x2": x2,
            "segment": np.where(rng.random(n) < 0.5, "a", "b"),
            "y": (rng.random(n) < p).astype(int),
        }
    )


def columns(domain: str, rows: pd.DataFrame) -> pd.DataFrame:
    return rows[[c.name for c in get_domain(domain).data.columns]]


def champion(domain: str, seed: int = 0, weight: float = 3.0) -> str:
    """Train, register and promote a champion on labelled rows; keeps its reference like the train step."""
    from continuum import training

    spec = get_domain(domain)
    rows = columns(domain, frame(1200, seed, start=900_000, weight=weight))
    train, holdout = rows.iloc[:900], rows.iloc[900:]
    batch_id = f"{seed:016x}"
    result = training.train_and_register(
        spec,
        train,
        holdout,
        batch_id=batch_id,
        dataset_uri="s3://continuum/probe",
        tags={"role": "challenger"},
    )
    pipeline._save_lineage(spec, result.version, train, [batch_id])
    registry.promote(domain, result.version)
    return result.version


def scored(domain: str, rows: pd.DataFrame) -> decision.DecisionRecord:
    """An unlabelled batch, validated, through the real score step (monitor/train/promote had nothing to do)."""
    from continuum import validation

    unlabelled = columns(domain, rows).drop(columns="y")
    batch_id = storage.batch_id_for(unlabelled.to_csv(index=False).encode())
    storage.put_frame(Keys(domain).validated(batch_id), validation.conform(get_domain(domain), unlabelled))
    record = decision.load(domain, batch_id)
    for step in ("gate", "monitor", "train", "promote"):
        record.mark(step)
    record.save()
    pipeline.run_scoring(domain, batch_id)
    return decision.load(domain, batch_id)


def land_labels(domain: str, rows: pd.DataFrame, name: str = "labels.csv") -> str:
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False)
    data = buffer.getvalue().encode()
    labels.land_labels_file(domain, name, data)
    return storage.batch_id_for(data)


def recorded(domain: str, kind: str) -> list[dict]:
    return alert_delivery.recorded(domain, kind=kind)


def test_realised_metric_per_batch_and_segment_from_the_scores_written(probe, mlflow_store):
    version = champion(PROBE)
    rows = frame(400, seed=1)
    record = scored(PROBE, rows)
    assert record.champion.version == version and record.estimate is not None  # CBPE at scoring time

    labels_id = land_labels(PROBE, rows[["row_id", "y"]].iloc[:300])
    [outcome] = labels.register_landed_labels(PROBE)
    assert outcome["batches"] == [record.batch_id] and outcome["matched_rows"] == 300
    result = storage.get_json(Keys(PROBE).realised(record.batch_id, labels_id))

    served = storage.get_frame(Keys(PROBE).scores(record.batch_id)).iloc[:300]
    truth = rows["y"].iloc[:300].to_numpy()
    assert result["value"] == pytest.approx(metrics.compute("accuracy", truth, served["probability"]))
    assert (
        result["probabilities_from"] == "scores" and result["scored_by"] == version and result["rows"] == 300
    )
    for segment in ("a", "b"):
        mask = (rows["segment"].iloc[:300] == segment).to_numpy()
        assert result["segments"][segment]["rows"] == int(mask.sum())
        assert result["segments"][segment]["value"] == pytest.approx(
            metrics.compute("accuracy", truth[mask], served["probability"].to_numpy()[mask])
        )
    holdout = record.champion.metrics["accuracy"]
    assert result["holdout"] == holdout and result["gap"] == pytest.approx(holdout - result["value"])
    # the estimate made before the labels, and how far it was from what they showed
    assert result["estimated"] == record.estimate.value
    assert result["estimate_error"] == pytest.approx(result["value"] - record.estimate.value)
    assert abs(result["estimate_error"]) < 0.06  # calibrated model: CBPE was close
    assert storage.list_keys(Keys(PROBE).labels_landing) == []  # processed, not left behind
    assert result["labelled_batch"] is None and batches.pending(PROBE) == []  # nothing to retrain for

    from continuum import cli

    [entry] = cli.status(PROBE)["performance"]  # what `continuum status` prints
    assert entry["batch_id"] == record.batch_id and entry["estimated"] == record.estimate.value
    [shown] = entry["realised"]
    assert shown["labels_id"] == labels_id and shown["value"] == result["value"]
    assert shown["segments"] == result["segments"] and shown["gap"] == result["gap"]

    # The README shows this record and the estimate with exactly these keys.
    realised_example, estimate_example = readme_examples()
    assert set(realised_example) == set(result)
    assert set(next(iter(realised_example["segments"].values()))) == set(result["segments"]["a"])
    assert set(estimate_example) == set(record.estimate.model_dump())
    assert set(shown) | {"batch_id"} == set(readme_status_keys())


def readme_examples() -> tuple[dict, dict]:
    import json
    import re

    from continuum import settings

    readme = (settings.REPO_ROOT / "README.md").read_text()
    realised = re.search(r"## Late labels and estimated performance.*?```json\n(.*?)```", readme, re.S).group(1)
    estimate = re.search(r"On an\nunlabelled batch `estimate` is e\.g\. `(\{.*?\})`", readme, re.S).group(1)
    return json.loads(realised), json.loads(estimate.replace("\n", " "))


def readme_status_keys() -> list[str]:
    import re

    from continuum import settings

    readme = (settings.REPO_ROOT / "README.md").read_text()
    shown = re.search(r'"realised": \[\{(.*?)\}\]\}`', readme, re.S).group(1)
    return ["batch_id", *re.findall(r'"(\w+)"', shown)]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("row_id,label\nr000001,1\n", "no column(s) ['y']"),
        ("row_id,y\nr000001,1\nr000002,maybe\n", "y"),
        ("row_id,y\nr000001,1\nr000001,0\n", "row_id"),
        ("row_id,y\nnobody,1\n", "none of the 1 ids is in a scored, unlabelled batch"),
        ("", "the file is empty"),
    ],
    ids=["no-target", "bad-label", "duplicated-id", "unknown-ids", "empty"],
)
def test_a_bad_labels_file_is_quarantined_with_its_reason_and_the_owner_is_told(probe, content, reason):
    data = content.encode()
    labels.land_labels_file(PROBE, "labels.csv", data)
    [outcome] = labels.register_landed_labels(PROBE)
    labels_id = storage.batch_id_for(data)
    assert outcome["quarantined"] is True and reason in outcome["reason"]
    where = Keys(PROBE).labels_quarantine(labels_id)
    assert storage.get_bytes(f"{where}raw.csv") == data  # kept as it was landed
    assert reason in storage.get_json(f"{where}report.json")["reason"]
    assert storage.list_keys(Keys(PROBE).labels_landing) == []
    [alert] = recorded(PROBE, "batch_quarantined")
    assert "labels.csv quarantined" in alert["summary"] and alert["facts"]["labels_id"] == labels_id


def test_realised_metric_below_floor_alerts_queues_a_performance_retrain_and_reruns_idempotently(
    probe, mlflow_store
):
    champion(PROBE)
    rows = frame(400, seed=3)
    record = scored(PROBE, rows)
    flipped = rows[["row_id", "y"]].assign(y=1 - rows["y"])  # the world turned: concept drift
    land_labels(PROBE, flipped)
    [outcome] = labels.register_landed_labels(PROBE)

    [alert] = recorded(PROBE, "champion_below_floor")
    assert alert["severity"] == "critical" and alert["facts"]["source"] == "late labels"
    assert alert["facts"]["value"] < 0.6 and alert["batch_id"] == record.batch_id
    [labelled] = outcome["labelled_batches"]
    assert landing.register_landed(PROBE) == [labelled] and batches.pending(PROBE) == [labelled]

    # The ordinary decide steps take it: a labelled batch, the champion below the floor on it.
    assert pipeline.run_gate(PROBE, labelled)["success"] is True
    monitored = pipeline.run_monitor(PROBE, labelled)
    assert monitored["retrain"] is True and "performance" in monitored["reasons"]
    batch = storage.get_frame(Keys(PROBE).validated(labelled))
    assert len(batch) == 400 and (batch["y"].to_numpy() == 1 - rows["y"].to_numpy()).all()

    # A retried task (the file still there, no outcome written) rewrites the same record, lands no second
    # batch and pages nobody twice; the same file landed after it was processed is a kept duplicate.
    key = Keys(PROBE).realised(record.batch_id, outcome["labels_id"])
    first = storage.get_bytes(key)
    storage.delete(Keys(PROBE).labels(outcome["labels_id"]) + "outcome.json")
    land_labels(PROBE, flipped)
    [again] = labels.register_landed_labels(PROBE)
    assert storage.get_bytes(key) == first and again["labelled_batches"] == [labelled]
    assert landing.register_landed(PROBE) == [] and batches.pending(PROBE) == [
        labelled
    ]  # decided already: a duplicate
    assert len(recorded(PROBE, "champion_below_floor")) == 1
    land_labels(PROBE, flipped)
    assert labels.register_landed_labels(PROBE) == []
    assert storage.list_keys(Keys(PROBE).labels(outcome["labels_id"]) + "duplicates/")
    assert storage.get_bytes(key) == first


def test_labels_for_a_batch_waiting_for_labels_let_its_retrain_happen(probe, mlflow_store):
    champion(PROBE)
    rows = frame(300, seed=4)
    record = scored(PROBE, rows)
    pipeline._wait_for_labels(PROBE, record.batch_id, ["drift"])  # what monitor did on the unlabelled batch
    land_labels(PROBE, rows[["row_id", "y"]])  # good labels: not below the floor
    [outcome] = labels.register_landed_labels(PROBE)
    [labelled] = outcome["labelled_batches"]
    assert landing.register_landed(PROBE) == [labelled]
    pipeline.run_gate(PROBE, labelled)
    monitored = pipeline.run_monitor(PROBE, labelled)
    assert monitored["retrain"] is True and "drift" in monitored["reasons"]
    assert decision.load(PROBE, labelled).retrain.carried_from == [record.batch_id]
    assert not recorded(PROBE, "champion_below_floor")


def test_a_gap_to_the_holdout_metric_alerts_and_resolves_once_it_closes(probe, mlflow_store):
    champion(PROBE)
    rows = frame(600, seed=5)
    first = scored(PROBE, rows.iloc[:300])
    noisy = rows[["row_id", "y"]].iloc[:300].copy()
    flip = np.random.default_rng(0).random(300) < 0.2
    noisy.loc[flip, "y"] = 1 - noisy.loc[flip, "y"]  # worse than at blessing, still above the floor
    land_labels(PROBE, noisy, "noisy.csv")
    labels.register_landed_labels(PROBE)
    [gap] = recorded(PROBE, "realised_gap")
    assert gap["severity"] == "warning" and gap["facts"]["gap"] > 0.05 and gap["batch_id"] == first.batch_id
    assert not recorded(PROBE, "champion_below_floor")  # the floor is 0.6

    scored(PROBE, rows.iloc[300:])
    land_labels(PROBE, rows[["row_id", "y"]].iloc[300:], "true.csv")
    labels.register_landed_labels(PROBE)
    [resolved] = recorded(PROBE, "resolved")
    assert resolved["facts"]["resolves"] == "realised_gap"
    land_labels(PROBE, rows[["row_id", "y"]].iloc[300:450], "more.csv")  # still closed: no second resolved
    labels.register_landed_labels(PROBE)
    assert len(recorded(PROBE, "resolved")) == 1


def test_a_shifted_batch_raises_estimated_drop_and_never_promotes_or_retrains(probe, mlflow_store):
    version = champion(PROBE)
    calm = scored(PROBE, frame(300, seed=6))
    assert calm.estimate.drop < 0.05 and not recorded(PROBE, "estimated_drop")

    shifted = scored(PROBE, frame(300, seed=7, start=1000, spread=0.2))  # rows crowd the decision boundary
    assert shifted.estimate.drop > 0.05 and shifted.estimate.version == version
    [alert] = recorded(PROBE, "estimated_drop")
    assert alert["severity"] == "warning" and alert["batch_id"] == shifted.batch_id
    assert registry.roles(PROBE) == {"champion": version, "previous": None}
    assert not shifted.promoted and shifted.challenger is None and not shifted.retrain.triggered
    assert not storage.exists(Keys(PROBE).retrain_request()) and batches.pending(PROBE) == []


def test_recommendations_are_judged_by_rescoring_with_the_version_that_scored(probe, mlflow_store):
    first = champion(RETAIL, seed=0)
    rows = frame(200, seed=8)
    record = scored(RETAIL, rows)
    assert set(storage.get_frame(Keys(RETAIL).scores(record.batch_id)).columns) == {
        "user",
        "rank",
        "item",
        "score",
    }
    second = champion(RETAIL, seed=1, weight=-3.0)  # a very different model serves now
    assert registry.champion(RETAIL).version == second != first

    labels_id = land_labels(RETAIL, rows[["row_id", "y"]])
    labels.register_landed_labels(RETAIL)
    result = storage.get_json(Keys(RETAIL).realised(record.batch_id, labels_id))
    spec = get_domain(RETAIL)
    validated = storage.get_frame(Keys(RETAIL).validated(record.batch_id))
    from continuum import scoring

    by_first = scoring.probabilities(spec, registry.load(RETAIL, first), validated)
    by_second = scoring.probabilities(spec, registry.load(RETAIL, second), validated)
    assert result["probabilities_from"] == f"rescored:v{first}" and result["scored_by"] == first
    assert result["value"] == pytest.approx(metrics.compute("accuracy", rows["y"], by_first))
    assert result["value"] != pytest.approx(metrics.compute("accuracy", rows["y"], by_second))
    assert not recorded(RETAIL, "champion_below_floor")  # scored by a version that no longer serves


def test_the_new_monitoring_keys_are_validated_in_the_spec(tmp_path, monkeypatch):
    from continuum.specs import load_domains

    bad = {**SPEC, "name": "bad_gap", "monitoring": {**SPEC["monitoring"], "max_realised_gap": -0.1}}
    (tmp_path / "bad_gap.yaml").write_text(yaml.safe_dump(bad))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    _, errors = load_domains()
    [error] = [e for e in errors if e.path.name == "bad_gap.yaml"]
    assert error.field == "monitoring.max_realised_gap"
    off = {**SPEC, "name": "gap_off", "monitoring": {**SPEC["monitoring"], "max_estimated_drop": None}}
    (tmp_path / "bad_gap.yaml").write_text(yaml.safe_dump(off))
    assert get_domain("gap_off").monitoring.max_estimated_drop is None
