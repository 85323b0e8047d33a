"""A real public dataset through `continuum ingest --run`, as a user-declared domain outside the repository.

**The data.** The RAND Health Insurance Experiment (1974-1982; public domain), as the
person-year source file statsmodels ships with its `randhie` dataset
(`statsmodels/datasets/randhie/src/randhie.csv`, 20,190 rows, read offline). The
domain `rand_high_cost` is what a health insurer would ask of it: will this insured
person's medical expenses for the year exceed $500 (`high_cost`, derived from
`meddol > 500`)? Its spec is written to a temporary directory on CONTINUUM_DOMAINS_PATH,
never into `include/domains/`.

**Why this dataset.** Of the datasets bundled with scikit-learn and statsmodels, it is the
only table with a real classification question that has most of the quirks of real data:

- missing values: `ghindx` (general health index) is empty for 22-40% of the rows of a
  year, `educdec` (years of education) for a few; both are declared `nullable`;
- duplicate rows: twins in the same family give identical rows (same age, plan and answers;
  5 in year 1), which the default `duplicated_rows: warn` records and lets through;
- imbalanced classes: 7.4% of person-years are `high_cost`;
- categorical text: self-rated health, which the file stores as the dummies `hlthg`, `hlthf`,
  `hlthp` with "excellent" omitted (statsmodels' codebook), is written back as the one text
  column `health` (excellent / good / fair / poor), as a claims system would export it.
  That is a re-encoding of real answers, not invented data; no other column of the file is text.

**What is not in it.** No value of a wrong type, no out-of-range value, no unseen
category: the file is clean in that sense, so the broken batch injects two faults
(`simulate.faults`: text in `coins`, a negative `lpi`), which is the only batch that is changed
by hand. The experiment's `site` (1-6) is held back and added to the contract mid-life.

**The batches** follow the experiment's years (the same people, a year older each time);
rows are picked by seeded or quantile rules, never one by one:
first model (year 1), stable (a seeded half of year 2), shifted (the oldest quarter of year 3
by `xage`), label-flipped (year 4 with `high_cost` inverted), broken (year 5 with the two
faults); then `site` is added to the spec: a stable batch (the other half of year 2) and a
shifted one (the youngest quarter of year 3). The whole story runs once per module
(`story`); each test asserts on its decision records.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from continuum import dagrun, decision, registry, storage
from continuum.simulate import faults
from continuum.specs import load_spec
from continuum.storage import Keys

pytestmark = pytest.mark.slow

DOMAIN = "rand_high_cost"
SEED = 7
FEATURES = ["coins", "idp", "lpi", "fmde", "physlm", "disea", "health", "female", "xage", "child", "num"]
FEATURES += ["educdec", "linc", "ghindx"]

SPEC = {
    "name": DOMAIN,
    "description": "Probability that a person's medical expenses for the year exceed $500 (RAND HIE).",
    "owner": "health-risk",
    "schedule": "@weekly",
    "data": {
        "format": "csv",
        "target": "high_cost",  # left out of `columns`: typed by positive_label (the README's form)
        "positive_label": 1,
        "columns": [
            {"name": "coins", "type": "int", "allowed": [0, 25, 50, 95, 100]},  # coinsurance rate, %
            {"name": "idp", "type": "bool"},  # individual deductible plan
            {"name": "lpi", "type": "float", "min": 0},  # log participation incentive
            {"name": "fmde", "type": "float", "min": 0},  # log maximum dollar expenditure
            {"name": "physlm", "type": "float", "min": 0, "max": 1},  # physical limitation
            {"name": "disea", "type": "float", "min": 0},  # chronic diseases
            {"name": "health", "type": "category", "allowed": ["excellent", "good", "fair", "poor"]},
            {"name": "female", "type": "bool", "protected": True},  # never a model input
            {"name": "xage", "type": "float", "min": 0, "max": 110},
            {"name": "child", "type": "bool"},
            {"name": "num", "type": "int", "min": 1, "max": 20},  # family size
            {"name": "educdec", "type": "float", "min": 0, "max": 30, "nullable": True},
            {"name": "linc", "type": "float", "min": 0},  # log family income
            {"name": "ghindx", "type": "float", "min": 0, "max": 100, "nullable": True},
        ],
    },
    # On this data a logistic regression beats shallow boosted trees (ROC-AUC 0.741 vs 0.720 on the
    # first batch), so the baseline gate refused every boosted challenger: the user's model is the
    # logistic regression, and it still has to be no worse than the simple models it is judged against.
    "model": {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 500},
    },
    "monitoring": {"primary_metric": "roc_auc", "floor": 0.6, "drift_share": 0.3},
    "training": {"window_batches": 10, "holdout_fraction": 0.25, "seed": SEED},
    "blessing": {"max_degradation": 0.02},
}
SITE = {"name": "site", "type": "category", "allowed": ["1", "2", "3", "4", "5", "6"]}


def rand_hie() -> pd.DataFrame:
    """The person-years of the RAND HIE source file, in this domain's columns (plus `year` and `site`)."""
    source = resources.files("statsmodels.datasets.randhie") / "src" / "randhie.csv"
    with resources.as_file(source) as path:
        raw = pd.read_csv(path)
    dummies = [raw["hlthp"] == 1, raw["hlthf"] == 1, raw["hlthg"] == 1]  # "excellent" is the omitted one
    health = np.select(dummies, ["poor", "fair", "good"], "excellent")
    frame = raw[[c for c in FEATURES if c != "health"]].assign(health=health)[FEATURES]
    return frame.assign(
        high_cost=(raw["meddol"] > 500).astype("int64"), year=raw["year"], site=raw["site"].astype(str)
    )


def year(data: pd.DataFrame, number: int, site: bool = False) -> pd.DataFrame:
    rows = data[data["year"] == number].drop(columns=["year"])
    return rows if site else rows.drop(columns=["site"])


def by_age(rows: pd.DataFrame, oldest: bool) -> pd.DataFrame:
    """A real covariate shift: the oldest (or youngest) quarter of the rows by age."""
    if oldest:
        return rows[rows["xage"] >= rows["xage"].quantile(0.75)]
    return rows[rows["xage"] <= rows["xage"].quantile(0.25)]


@dataclass
class Story:
    records: dict[str, dict] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    champions: dict[str, str | None] = field(default_factory=dict)  # champion version after each batch
    domains_check: tuple[int, str] = (0, "")  # `continuum domains --champions` with a column removed
    spec_file: Path | None = None


def write_spec(path: Path, spec: dict) -> str:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec(path).content_hash()


@pytest.fixture(scope="module")
def story(module_loop, tmp_path_factory) -> Story:
    from continuum import cli

    loop, monkeypatch = module_loop
    specs_dir = tmp_path_factory.mktemp("user-specs")
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(specs_dir))
    dagrun.reset()  # parse the DAGs again, with the user's domain
    spec_file = specs_dir / f"{DOMAIN}.yaml"
    told = Story(spec_file=spec_file)
    told.hashes["v1"] = write_spec(spec_file, SPEC)
    data = rand_hie()
    rng = np.random.default_rng(SEED)
    second = year(data, 2, site=True)
    half = rng.permutation(len(second)) < len(second) // 2
    flipped = year(data, 4).assign(high_cost=lambda f: 1 - f["high_cost"])
    contract = load_spec(spec_file)
    broken = faults.out_of_range(faults.wrong_types(year(data, 5), contract, rng), contract, rng)

    def ingest(name: str, frame: pd.DataFrame) -> None:
        told.records[name] = loop.ingest(DOMAIN, frame)
        champion = registry.champion(DOMAIN)
        told.champions[name] = champion.version if champion else None

    ingest("first", year(data, 1))
    ingest("stable", second[half].drop(columns=["site"]))
    ingest("shifted", by_age(year(data, 3), oldest=True))
    ingest("flipped", flipped)
    ingest("broken", broken)

    # The contract gains a column the data has always had; nothing else changes.
    with_site = {**SPEC["data"], "columns": [*SPEC["data"]["columns"], SITE]}
    told.hashes["v2"] = write_spec(spec_file, {**SPEC, "data": with_site})
    ingest("new_column", second[~half])
    ingest("new_column_shifted", by_age(year(data, 3, site=True), oldest=False))

    # A spec that drops a column the live champion needs, checked before anything runs.
    live = yaml.safe_load(spec_file.read_text())
    kept = [c for c in live["data"]["columns"] if c["name"] != "ghindx"]
    removed = {**live, "data": {**live["data"], "columns": kept}}
    spec_file.write_text(yaml.safe_dump(removed, sort_keys=False))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["domains", "--champions"])
    told.domains_check = (code, err.getvalue())
    spec_file.write_text(yaml.safe_dump(live, sort_keys=False))
    return told


def test_the_first_batch_keeps_its_real_quirks_and_trains_the_first_model(story):
    first = story.records["first"]
    assert first["spec_hash"] == story.hashes["v1"]
    # Twins give identical rows: recorded as a warning, the batch goes on whole.
    assert first["validation"]["success"] is True
    assert first["validation"]["warnings"] == ["expect_compound_columns_to_be_unique"]
    validated = storage.get_frame(Keys(DOMAIN).validated(first["batch_id"]))
    assert len(validated) == 5638
    assert validated["ghindx"].isna().mean() > 0.2  # missing values kept, not dropped
    assert set(validated["health"].dropna().astype(str)) == {"excellent", "good", "fair", "poor"}
    assert validated["high_cost"].mean() < 0.1  # imbalanced
    assert first["retrain"]["reasons"] == ["no_champion"]
    assert first["promoted"] is True and first["challenger"]["metrics"]["roc_auc"] >= 0.6
    # The protected attribute never reaches the model; the version names the spec it was trained under.
    model = registry.load(DOMAIN, first["challenger"]["version"])
    assert "female" not in list(model.feature_names_in_) and "health" in list(model.feature_names_in_)
    assert registry.version(DOMAIN, first["challenger"]["version"]).tags["spec_hash"] == story.hashes["v1"]


def test_a_stable_batch_changes_nothing(story):
    stable = story.records["stable"]
    assert stable["drift"]["detected"] is False, stable["drift"]
    assert stable["performance"]["value"] >= 0.6
    assert stable["retrain"]["triggered"] is False and stable["challenger"] is None
    assert stable["champion"]["version"] == story.champions["first"]
    assert stable["scores"] is not None


def test_a_shifted_batch_is_caught_by_drift_and_retrains(story):
    shifted = story.records["shifted"]
    assert shifted["drift"]["detected"] is True and "xage" in shifted["drift"]["columns"], shifted["drift"]
    assert "drift" in shifted["retrain"]["reasons"]
    assert shifted["challenger"] is not None
    assert shifted["champion_before"]["version"] == story.champions["first"]
    expected = shifted["challenger"]["version"] if shifted["promoted"] else story.champions["first"]
    assert story.champions["shifted"] == expected


def test_flipped_labels_drop_the_metric_and_a_challenger_below_the_floor_is_not_promoted(story):
    flipped = story.records["flipped"]
    assert flipped["performance"]["value"] < 0.6
    assert "performance" in flipped["retrain"]["reasons"]
    challenger = flipped["challenger"]
    assert challenger is not None and challenger["blessed"] is False and flipped["promoted"] is False
    assert challenger["metrics"]["roc_auc"] < 0.6
    assert any("below floor 0.6" in reason for reason in challenger["why_not"]), challenger["why_not"]
    assert flipped["promotion"]["outcome"] == "not_blessed"
    assert story.champions["flipped"] == story.champions["shifted"]


def test_a_broken_batch_is_quarantined_with_a_reason_and_the_champion_untouched(story):
    broken = story.records["broken"]
    assert broken["quarantined"] is True and broken["validation"]["success"] is False
    assert "expect_column_values_to_match_regex(coins)" in broken["validation"]["failed"]
    assert "expect_column_values_to_be_between(lpi)" in broken["validation"]["failed"]
    assert broken["validation"]["reason"].startswith("2 expectations failed")
    assert broken["challenger"] is None and broken["scores"] is None
    assert broken["champion"]["version"] == story.champions["broken"] == story.champions["flipped"]


def test_a_column_added_mid_life_is_a_spec_change_not_an_outage(story):
    added = story.records["new_column"]
    assert story.hashes["v2"] != story.hashes["v1"]
    assert added["spec_hash"] == story.hashes["v2"] and added["finished"] is True
    # Drift on the columns both sides have: the champion's reference has no `site`.
    assert added["drift"]["not_compared"] == ["site"] and added["drift"]["detected"] is False
    assert added["retrain"]["triggered"] is False
    # The champion, trained before `site` existed, still scores the batch that has it.
    champion = story.champions["broken"]
    assert added["champion"]["version"] == champion and added["performance"]["value"] >= 0.6
    scores = storage.get_frame(Keys(DOMAIN).scores(added["batch_id"]))
    assert len(scores) == len(storage.get_frame(Keys(DOMAIN).validated(added["batch_id"])))
    assert scores["probability"].between(0, 1).all()
    assert "site" not in list(registry.load(DOMAIN, champion).feature_names_in_)


def test_the_next_challenger_learns_from_the_new_column(story):
    shifted = story.records["new_column_shifted"]
    assert shifted["drift"]["detected"] is True and "site" in shifted["drift"]["not_compared"]
    version = shifted["challenger"]["version"]
    assert "site" in list(registry.load(DOMAIN, version).feature_names_in_)
    assert registry.version(DOMAIN, version).tags["spec_hash"] == story.hashes["v2"]
    # Its window spans the change: batches from before `site` existed, and this one.
    window = storage.get_json(Keys(DOMAIN).window(version))
    assert window[0] == story.records["first"]["batch_id"] and window[-1] == shifted["batch_id"]
    assert "site" not in storage.get_frame(Keys(DOMAIN).validated(window[0])).columns
    reference = storage.get_frame(Keys(DOMAIN).reference(version))  # the drift baseline it leaves behind
    assert 0 < reference["site"].isna().mean() < 1


def test_removing_a_column_the_champion_needs_is_reported_before_anything_runs(story):
    code, err = story.domains_check
    assert code == 1
    line = next(line for line in err.splitlines() if "ghindx" in line)
    assert str(story.spec_file) in line
    assert "column 'ghindx' was removed, but the live champion of 'rand_high_cost' needs it" in line
    assert "restore the column in the spec, or let a challenger trained on the new contract replace" in line


def test_the_decision_records_are_the_ones_in_s3(story):
    for name, record in story.records.items():
        stored = decision.load(DOMAIN, record["batch_id"]).model_dump(mode="json")
        assert json.dumps(stored, sort_keys=True) == json.dumps(record, sort_keys=True), name
