"""`continuum explain DOMAIN --row '{...}'`: one row, checked like a batch, scored by the champion, explained."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from continuum import cli, registry, simulate, training
from continuum.settings import REPO_ROOT
from continuum.specs import get_domain
from continuum.storage import Keys

DOMAIN = "insurance_claim_risk"


def _readme_row() -> str:
    """The row of the README's `continuum explain` example, as written there."""
    text = (REPO_ROOT / "README.md").read_text()
    return re.search(r"continuum explain insurance_claim_risk --row '(\{\"policy_id\".*\})'", text).group(1)


@pytest.fixture
def champion(s3, mlflow_store):
    spec = get_domain(DOMAIN)
    small = spec.model_copy(update={"model": spec.model.model_copy(update={"params": {"max_iter": 30}})})
    train, holdout = training.split(simulate.generate(DOMAIN, 1500, seed=15), small)
    result = training.train_and_register(small, train, holdout, batch_id="00000000000000e1", dataset_uri="s3://x/y")
    s3.put_frame(Keys(DOMAIN).reference(result.version), train)
    registry.promote(DOMAIN, result.version, expected=None)
    return result.version


def test_the_readme_example_prints_the_champions_score_reasons_and_version(champion, capsys):
    assert cli.main(["explain", DOMAIN, "--row", _readme_row()]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["domain"] == DOMAIN and payload["model_version"] == champion
    row = pd.DataFrame([json.loads(_readme_row())])
    model = registry.load(DOMAIN, champion)
    expected = model.predict_proba(training.features(get_domain(DOMAIN), row))[0, 1]
    assert payload["score"]["claim_probability"] == pytest.approx(expected)
    assert payload["score"]["premium"] is None and "scoring.base_rate" in payload["score"]["note"]
    assert 1 <= len(payload["reason_codes"]) <= 3
    inputs = {c.name for c in get_domain(DOMAIN).data.feature_columns}
    for code in payload["reason_codes"]:
        assert re.fullmatch(r"(\w+)=\S+ \([+-]\d\.\d{3}\)", code) and code.split("=")[0] in inputs

    # With the portfolio's base rate set, one policy is priced as batch scoring prices it.
    from continuum import explain

    spec = get_domain(DOMAIN)
    priced = spec.model_copy(update={"scoring": spec.scoring.model_copy(update={"base_rate": 0.1})})
    payload = explain.explain_row(priced, explain.parse_row(priced, _readme_row()))
    p = payload["score"]["claim_probability"]
    assert payload["score"]["premium"] == pytest.approx(round(420.0 * min(max(p / 0.1, 0.5), 3.0), 2))


def _with(**changes) -> str:
    row = json.loads(_readme_row())
    row.update(changes)
    return json.dumps({k: v for k, v in row.items() if v is not ...})


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"driver_age": 22,', "--row is not JSON"),
        ("[1, 2]", "--row must be a JSON object"),
        (_with(region=...), "--row lacks column(s) ['region']"),
        (_with(colour="red"), "--row has column(s) ['colour'] that insurance_claim_risk does not declare"),
        (_with(driver_age="abc"), 'driver_age "abc" is not a valid int'),
        (_with(driver_age=17), "driver_age 17 is outside its range (min 18, max 100)"),
        (_with(region="mars"), "region \"mars\" is not one of ['north', 'south', 'east', 'west']"),
        (_with(prior_claims=None), "prior_claims is null"),
        (_with(urban=[True]), "--row column 'urban' must be a single value"),
    ],
)
def test_a_bad_row_is_one_line_saying_what_is_wrong_and_exit_2(row, message, capsys):
    assert cli.main(["explain", DOMAIN, "--row", row]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_without_a_champion_it_says_what_to_do(s3, mlflow_store, capsys):
    assert cli.main(["explain", DOMAIN, "--row", _readme_row()]) == 2
    assert "has no champion yet; ingest a labelled batch first" in capsys.readouterr().err
