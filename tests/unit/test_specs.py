"""Domain specs: valid files load, broken ones are named with their field and never hide the others."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

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
        (lambda t: t.replace("- {name: age, type: int", "- {name: label, type: int, allowed: [0, 1]}\n    - {name: age, type: int"), "data"),
        (lambda t: t.replace("max: 100}", "max: 100, checks: {range: {severity: fatal}}}"), "data.columns.1.checks.range.severity"),
        (lambda t: t.replace("max: 100}", "max: 100, checks: {rnage: {severity: warn}}}"), "data.columns.1.checks.rnage.[key]"),
        (lambda t: t.replace("max: 100}", "max: 100, checks: {range: {sevrity: warn}}}"), "data.columns.1.checks.range.sevrity"),
        (lambda t: t.replace("max: 100}", "max: 100, checks: {range: {mostly: 1.5}}}"), "data.columns.1.checks.range.mostly"),
        (lambda t: t.replace("{name: colour, type: category, allowed: [red, blue]}", "{name: colour, type: category, checks: {allowed: {severity: warn}}}"), "data.columns.2"),
        (lambda t: t.replace("max: 100}", "max: 100, checks: {unique: {severity: warn}}}"), "data"),
        (lambda t: t.replace("sklearn.linear_model.LogisticRegression", "subprocess.Popen"), "model.estimator"),
        (lambda t: t.replace("sklearn.linear_model.LogisticRegression", "sklearnx.Model"), "model.estimator"),
        (lambda t: t + "baseline: {estimator: os.system}\n", "baseline.estimator"),
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


# --- estimators: only scikit-learn-compatible classes from allowed packages -------------------

SIDE_EFFECT_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("imported")

class Thing:
    def __init__(self, **kwargs):
        pass
"""


@pytest.fixture
def hostile_module(tmp_path, monkeypatch):
    """A module on sys.path that leaves a marker file when imported, as a hostile package would."""
    marker = tmp_path / "imported.txt"
    (tmp_path / "hostile_pkg.py").write_text(SIDE_EFFECT_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    import sys

    sys.modules.pop("hostile_pkg", None)


def test_estimator_outside_the_allowed_packages_is_refused_before_import(tmp_path, monkeypatch, hostile_module):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    write(spec_dir, "evil", VALID.format(name="evil").replace("sklearn.linear_model.LogisticRegression", "hostile_pkg.Thing"))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(spec_dir))
    loaded, errors = specs.load_domains()
    assert "evil" not in [s.name for s in loaded]
    assert errors[0].field == "model.estimator" and "CONTINUUM_ESTIMATOR_PACKAGES" in errors[0].message
    # The training-time resolver checks the package again, for specs built without validation.
    with pytest.raises(specs.EstimatorError, match="outside the allowed estimator packages"):
        specs.resolve_estimator("hostile_pkg.Thing")
    assert not hostile_module.exists()


def test_allowed_package_still_needs_a_base_estimator(monkeypatch, hostile_module):
    monkeypatch.setenv("CONTINUUM_ESTIMATOR_PACKAGES", "xgboost, hostile_pkg")
    assert specs.check_estimator_path("hostile_pkg.Thing") == "hostile_pkg.Thing"
    with pytest.raises(specs.EstimatorError, match="not a scikit-learn estimator"):
        specs.resolve_estimator("hostile_pkg.Thing")


def test_a_class_that_is_no_base_estimator_is_a_spec_error_at_validation_time(tmp_path, monkeypatch, hostile_module):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    write(spec_dir, "odd", VALID.format(name="odd").replace("sklearn.linear_model.LogisticRegression", "hostile_pkg.Thing"))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(spec_dir))
    monkeypatch.setenv("CONTINUUM_ESTIMATOR_PACKAGES", "hostile_pkg")
    assert "odd" in [s.name for s in specs.load_domains()[0]]  # DAG parse time: nothing imported
    assert not hostile_module.exists()
    with pytest.raises(specs.SpecLoadError) as error:
        specs.get_domain("odd")  # what the CLI and every task load
    assert error.value.error.field == "model.estimator"
    assert "not a scikit-learn estimator" in error.value.error.message
    loaded, errors = specs.load_domains(import_estimators=True)  # `continuum domains`
    assert "odd" not in [s.name for s in loaded] and [e.field for e in errors] == ["model.estimator"]


def test_the_allow_list_is_checked_before_the_import_at_validation_time(tmp_path, monkeypatch, hostile_module):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    write(spec_dir, "evil", VALID.format(name="evil").replace("sklearn.linear_model.LogisticRegression", "hostile_pkg.Thing"))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(spec_dir))
    loaded, errors = specs.load_domains(import_estimators=True)
    assert errors[0].field == "model.estimator" and "outside the allowed estimator packages" in errors[0].message
    assert not hostile_module.exists()  # refused by name, never imported


def test_shell_popen_is_never_instantiated(tmp_path):
    from continuum import training

    marker = tmp_path / "ran.txt"
    spec = specs.get_domain("insurance_claim_risk")
    hostile = spec.model_copy(
        update={
            "model": specs.ModelSpec.model_construct(
                estimator="subprocess.Popen", params={"args": f"touch {marker}", "shell": True}
            )
        }
    )
    with pytest.raises(ValueError, match=r"model\.estimator 'subprocess\.Popen' is outside"):
        training.build_pipeline(hostile)
    assert not marker.exists()


def test_shipped_estimators_resolve():
    from sklearn.base import BaseEstimator

    for spec in specs.load_domains()[0]:
        for section in (spec.model, spec.baseline):
            if section is not None:
                assert issubclass(specs.resolve_estimator(section.estimator), BaseEstimator)


# --- the target and the id, declared or not ---------------------------------------------------


def test_target_declared_under_columns_keeps_its_declaration():
    spec = specs.DomainSpec.model_validate(yaml.safe_load(VALID.format(name="d")))
    assert spec.data.column("label").allowed == [0, 1]
    assert "label" not in [c.name for c in spec.data.feature_columns]


@pytest.mark.parametrize(("label", "kind"), [(1, "int"), (True, "bool"), ("yes", "string"), (1.0, "float")])
def test_undeclared_target_is_typed_by_its_positive_label(label, kind):
    raw = yaml.safe_load(VALID.format(name="d"))
    raw["data"]["columns"] = [c for c in raw["data"]["columns"] if c["name"] not in ("label", "row_id")]
    raw["data"]["positive_label"] = label
    spec = specs.DomainSpec.model_validate(raw)
    assert spec.data.column("label").type == kind and not spec.data.column("label").nullable
    assert spec.data.column("row_id").type == "string"
    assert {"label", "row_id"}.isdisjoint(c.name for c in spec.data.feature_columns)


# --- columns that are not features -------------------------------------------------------------


def test_keys_and_protected_columns_are_not_features():
    raw = yaml.safe_load(VALID.format(name="d"))
    raw["data"]["columns"] += [
        {"name": "user_id", "type": "int", "feature": False},
        {"name": "age_band", "type": "category", "allowed": ["18-30", "31+"], "protected": True},
    ]
    spec = specs.DomainSpec.model_validate(raw)
    names = [c.name for c in spec.data.feature_columns]
    assert names == ["age", "colour", "km"]
    assert [c.name for c in spec.data.protected_columns] == ["age_band"]


def test_shipped_domains_declare_keys_and_protected_attributes():
    retail = specs.get_domain("retail_recommender")
    assert {"user_id", "item_id"}.isdisjoint(c.name for c in retail.data.feature_columns)
    assert [c.name for c in retail.data.protected_columns] == ["customer_age_band"]
    claims = specs.get_domain("insurance_claim_risk")
    assert [c.name for c in claims.data.protected_columns] == ["driver_age_band"]


# --- content hash ------------------------------------------------------------------------------


def test_content_hash_ignores_layout_and_follows_content(tmp_path):
    text = VALID.format(name="d")
    first = specs.load_spec(write(tmp_path, "a", text))
    reordered = yaml.safe_load(text)
    reordered = {k: reordered[k] for k in reversed(list(reordered))}
    second = specs.load_spec(write(tmp_path, "b", "# a comment\n" + yaml.safe_dump(reordered, sort_keys=True)))
    assert first.content_hash() == second.content_hash()
    assert len(first.content_hash()) == 64
    changed = specs.load_spec(write(tmp_path, "c", text.replace("floor: 0.7", "floor: 0.71")))
    assert changed.content_hash() != first.content_hash()
    retyped = specs.load_spec(write(tmp_path, "d", text.replace("type: float, min: 0", "type: int, min: 0")))
    assert retyped.content_hash() != first.content_hash()


# --- fairness gates and limitations ------------------------------------------------------------


def _with_protected(**blessing) -> dict:
    raw = yaml.safe_load(VALID.format(name="d"))
    raw["data"]["columns"].append({"name": "age_band", "type": "category", "protected": True})
    raw["blessing"] = blessing
    return raw


@pytest.mark.parametrize(
    ("fairness", "field", "message"),
    [
        ([{"metric": "demographic_parity", "min": 0.8}], "blessing.fairness.0.metric", "unknown fairness metric 'demographic_parity'"),
        ([{"metric": "demographic_parity_ratio"}], "blessing.fairness.0", "needs min or max"),
        ([{"metric": "demographic_parity_ratio", "mni": 0.8}], "blessing.fairness.0.mni", "Extra inputs"),
        ([{"metric": "equalized_odds_ratio", "min": 0.8, "column": "colour"}], "", "'colour' is not a protected column"),
        ([{"metric": "mean_risk_factor_ratio", "min": 0.5}], "", "needs scoring.kind premium"),
    ],
)
def test_a_bad_fairness_gate_is_a_spec_error_naming_the_field(tmp_path, fairness, field, message):
    path = write(tmp_path, "d", yaml.safe_dump(_with_protected(fairness=fairness)))
    with pytest.raises(specs.SpecLoadError) as caught:
        specs.load_spec(path)
    assert caught.value.error.field == field and message in str(caught.value)
    if not field:  # a check across sections names the gate in its message
        assert "blessing.fairness.0" in str(caught.value)


def test_a_fairness_gate_needs_a_protected_column():
    raw = yaml.safe_load(VALID.format(name="d"))
    raw["blessing"] = {"fairness": [{"metric": "demographic_parity_ratio", "min": 0.8}]}
    with pytest.raises(ValueError, match="protected: true"):
        specs.DomainSpec.model_validate(raw)


def test_fairness_gates_and_limitations_load_and_count_in_the_hash():
    raw = _with_protected(fairness=[{"metric": "demographic_parity_ratio", "min": 0.8}, {"metric": "equalized_odds_difference", "max": 0.2}])
    raw["limitations"] = ["simulated data only"]
    spec = specs.DomainSpec.model_validate(raw)
    assert [(g.metric, g.min, g.max, g.min_group_rows) for g in spec.blessing.fairness] == [
        ("demographic_parity_ratio", 0.8, None, 30),
        ("equalized_odds_difference", None, 0.2, 30),
    ]
    assert spec.limitations == ["simulated data only"]
    assert specs.DomainSpec.model_validate({**raw, "limitations": []}).content_hash() != spec.content_hash()


def test_shipped_protected_domains_gate_fairness_and_every_domain_states_its_limitations():
    for name in ("insurance_claim_risk", "retail_recommender"):
        spec = specs.get_domain(name)
        assert [g.metric for g in spec.blessing.fairness] == ["primary_metric_ratio"]
    for spec in specs.load_domains()[0]:
        assert spec.limitations, spec.name


def test_the_readme_fairness_gates_and_limitations_load_on_the_claims_domain():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    optional = re.findall(r"```yaml\n(.*?)```", readme.split("## Add a domain", 1)[1], re.S)[1]
    example = yaml.safe_load(optional)
    raw = yaml.safe_load(specs.get_domain("insurance_claim_risk").source.read_text())
    raw["blessing"]["fairness"] = example["blessing"]["fairness"]
    raw["limitations"] = example["limitations"]
    spec = specs.DomainSpec.model_validate(raw)
    assert [(g.metric, g.column, g.min_group_rows) for g in spec.blessing.fairness] == [
        ("primary_metric_ratio", None, 30),
        ("equalized_odds_difference", "driver_age_band", 50),
    ]
    assert spec.limitations == example["limitations"]
