"""The same loop, unchanged, for retail (a rules baseline as first champion), fraud (its own
metric) and a user's domain added by one YAML file in CONTINUUM_DOMAINS_PATH."""

from __future__ import annotations

import pytest
import yaml

from continuum import registry, specs, storage
from continuum.storage import Keys

pytestmark = pytest.mark.slow


def test_retail_rules_baseline_is_first_champion_and_ml_must_beat_it(loop):
    domain = "retail_recommender"
    record = loop.ingest(domain, loop.batch(domain, n=6000, seed=21))
    assert record["retrain"]["reasons"] == ["no_champion"]
    baseline = registry.previous(domain) if record["promoted"] else registry.champion(domain)
    assert baseline.tags.get("role") == "baseline" and baseline.version == "1"
    challenger = record["challenger"]
    assert challenger["version"] == "2"
    champion_auc = record["extra"]["champion_on_holdout"]["roc_auc"]
    assert challenger["metrics"]["roc_auc"] > champion_auc, "the ML model must beat the rules on the same holdout"
    assert record["promoted"] is True and registry.champion(domain).version == "2"
    recommendations = storage.get_frame(Keys(domain).scores(record["batch_id"]))
    assert list(recommendations.columns[:3]) == ["user", "rank", "item"]
    assert recommendations.groupby("user")["rank"].max().max() <= 5
    _ranking_quality_on_the_holdout(domain, record)
    _every_version_has_a_card(domain, record)


def _ranking_quality_on_the_holdout(domain: str, record: dict) -> None:
    """Evidently's recommender metrics of challenger and champion on the same holdout, its HTML report,
    and the challenger's values in its model card."""
    from continuum import model_card

    ranking = record["extra"]["ranking"]
    names = {"ndcg_at_5", "map_at_5", "hit_rate_at_5", "popularity_coverage_at_5", "popularity_arp_at_5",
             "popularity_gini_at_5"}
    assert set(ranking["challenger"]) == names and set(ranking["champion"]) == names
    assert all(0 <= ranking["challenger"][n] <= 1 for n in names - {"popularity_arp_at_5"})
    assert ranking["challenger"]["ndcg_at_5"] > ranking["champion"]["ndcg_at_5"], "the ML model ranks better"
    assert ranking["report"] == storage.uri(Keys(domain).ranking_report(record["batch_id"]))
    assert b"NDCG" in storage.get_bytes(Keys(domain).ranking_report(record["batch_id"]))
    card = model_card.read(domain, record["challenger"]["version"])
    assert card["metrics"]["overall"]["ranking.ndcg_at_5"] == pytest.approx(ranking["challenger"]["ndcg_at_5"])


def _every_version_has_a_card(domain: str, record: dict) -> None:
    """Every version the run registered (the rules baseline and the challenger) has a model card with
    fairness and importance, and the decision record links the challenger's and the champions' cards."""
    import mlflow

    from continuum import model_card

    spec = specs.get_domain(domain)
    versions = mlflow.MlflowClient().search_model_versions(f"name = '{domain}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    for version in versions:
        card = model_card.read(domain, version.version)
        assert card["role"] == version.tags["role"] and card["training"]["spec_hash"] == spec.content_hash()
        assert set(card["fairness"]["report"]["columns"]) == {"customer_age_band"}
        assert card["fairness"]["gates"] and card["importance"]["features"]
        assert card["limitations"] == spec.limitations
    baseline = model_card.read(domain, "1")
    assert baseline["blessing"]["judged"] is False and baseline["promotion"]["replaced"] is None
    challenger = model_card.read(domain, "2")
    assert challenger["blessing"]["blessed"] is True and challenger["promotion"]["replaced"] == "1"
    assert record["challenger"]["card"] == model_card.uri(challenger["run_id"])
    assert record["champion_before"]["card"] == model_card.uri(baseline["run_id"])
    assert record["champion"]["card"] == record["challenger"]["card"]


def test_fraud_loop_honours_the_metric_its_spec_names(loop):
    domain = "insurance_fraud"
    spec = specs.get_domain(domain)
    first = loop.ingest(domain, loop.batch(domain, n=12000, seed=31))
    assert first["promoted"] is True, first["challenger"]
    assert spec.monitoring.primary_metric in first["challenger"]["metrics"]
    drifted = loop.ingest(domain, loop.batch(domain, n=12000, seed=32, faults=["concept_drift"], drift=1.0))
    assert drifted["performance"]["metric"] == "recall_at_precision"
    assert drifted["performance"]["value"] < spec.monitoring.floor
    assert "performance" in drifted["retrain"]["reasons"]


@pytest.fixture
def user_domain(tmp_path, monkeypatch):
    """A copy of the claims domain under another name, in a directory of the user's own."""
    from continuum import dagrun

    raw = yaml.safe_load(specs.get_domain("insurance_claim_risk").source.read_text())
    raw.update(name="my_claims", owner="my-team")
    raw["monitoring"].update(primary_metric="roc_auc", floor=0.65)
    raw["blessing"].update(max_degradation=0.02, segment_column=None)
    directory = tmp_path / "my_domains"
    directory.mkdir()
    path = directory / "my_claims.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(directory))
    dagrun.reset()
    yield path, raw
    dagrun.reset()


def test_user_domain_from_one_yaml_and_a_worse_challenger_is_not_promoted(loop, user_domain):
    from continuum import dagrun

    path, raw = user_domain
    first = loop.ingest("my_claims", loop.batch("insurance_claim_risk", seed=41))
    assert first["promoted"] is True and first["domain"] == "my_claims"
    assert registry.champion("my_claims").version == "1"

    # The user switches the estimator to one that knows nothing; drift triggers a retrain.
    raw["model"] = {"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
    path.write_text(yaml.safe_dump(raw))
    dagrun.reset()
    drifted = loop.batch("insurance_claim_risk", seed=42, faults=["covariate_drift"], drift=1.0)
    record = loop.ingest("my_claims", drifted)
    assert "drift" in record["retrain"]["reasons"]
    challenger = record["challenger"]
    assert challenger["version"] == "2" and challenger["blessed"] is False
    assert any("below floor" in reason for reason in challenger["why_not"])
    assert any("worse than champion" in reason for reason in challenger["why_not"])
    assert record["promoted"] is False
    assert registry.champion("my_claims").version == "1"
