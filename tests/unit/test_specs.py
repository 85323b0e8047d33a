"""Domain specs: valid files load, broken ones are named with their field and never hide the others."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from continuum import specs

VALID = textwrap.dedent(
    """
    name: {name}
    description: test domain
    owner: test-team
    schedule: "@daily"
    data:
      format: csv
      target: label
      id_column: row_id
      columns:
        - {{name: row_id, type: string}}
        - {{name: age, type: int, min: 18, max: 100}}
        - {{name: colour, type: category, allowed: [red, blue]}}
        - {{name: km, type: float, min: 0, nullable: true}}
        - {{name: label, type: int, allowed: [0, 1]}}
    model:
      estimator: sklearn.linear_model.LogisticRegression
      params: {{max_iter: 50}}
    monitoring:
      primary_metric: roc_auc
      floor: 0.7
      drift_share: 0.3
    my_own_key: kept
    """
)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_shipped_insurance_claim_risk_spec_loads():
    spec = specs.get_domain("insurance_claim_risk")
    assert spec.owner == "risk-team"
    assert spec.monitoring.primary_metric == "accuracy" and spec.monitoring.floor == 0.85
    assert spec.data.target == "has_claim" and spec.data.id_column == "policy_id"
    assert "has_claim" not in [c.name for c in spec.data.feature_columns]


def test_user_domain_from_domains_path_keeps_extra_keys(tmp_path, monkeypatch):
    write(tmp_path, "my_domain", VALID.format(name="my_domain"))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    spec = specs.get_domain("my_domain")
    assert spec.monitoring.primary_metric == "roc_auc"
    assert spec.model_extra["my_own_key"] == "kept"
    assert spec.source == tmp_path / "my_domain.yaml"


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        (lambda t: t.replace("name: bad_one", "name: Bad-One"), "name"),
        (lambda t: t.replace("type: int, min: 18", "type: integer, min: 18"), "data.columns.1.type"),
        (lambda t: t.replace("target: label", "target: nope"), "data"),
        (lambda t: t.replace("owner: test-team\n", ""), "owner"),
        (lambda t: t.replace("drift_share: 0.3", "drift_share: 3"), "monitoring.drift_share"),
        (lambda t: t.replace("min: 18, max: 100", "min: 100, max: 18"), "data.columns.1"),
        (lambda t: t.replace("sklearn.linear_model.LogisticRegression", "not a path"), "model.estimator"),
    ],
)
def test_broken_spec_names_file_and_field_and_keeps_others(tmp_path, monkeypatch, mutation, field):
    write(tmp_path, "good_one", VALID.format(name="good_one"))
    bad = write(tmp_path, "bad_one", mutation(VALID.format(name="bad_one")))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    loaded, errors = specs.load_domains()
    assert "good_one" in [s.name for s in loaded]
    assert "insurance_claim_risk" in [s.name for s in loaded]
    assert [e.path for e in errors] == [bad]
    assert errors[0].field == field
    assert str(bad) in str(errors[0]) and "Fix the file" in str(errors[0])


def test_unreadable_yaml_and_duplicate_names_are_reported(tmp_path, monkeypatch):
    write(tmp_path, "a", VALID.format(name="twin"))
    write(tmp_path, "b", VALID.format(name="twin"))
    write(tmp_path, "c", "name: [unclosed")
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    loaded, errors = specs.load_domains()
    assert [s.name for s in loaded].count("twin") == 1
    messages = {e.path.name: str(e) for e in errors}
    assert "already used" in messages["b.yaml"]
    assert "cannot be read as YAML" in messages["c.yaml"]


def test_several_directories_in_domains_path(tmp_path, monkeypatch):
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir(), second.mkdir()
    write(first, "d1", VALID.format(name="d1"))
    write(second, "d2", VALID.format(name="d2"))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", f"{first}:{second}")
    names = [s.name for s in specs.load_domains()[0]]
    assert {"d1", "d2"} <= set(names)


def test_unknown_domain_lists_known_ones():
    with pytest.raises(specs.UnknownDomain, match="insurance_claim_risk"):
        specs.get_domain("no_such_domain")
