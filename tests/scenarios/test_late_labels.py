"""Late labels through the real DAGs: an unlabelled drifted batch waits for labels; its labels let the retrain happen."""

from __future__ import annotations

import pytest

from continuum import cli, storage
from continuum.storage import Keys

DOMAIN = "insurance_claim_risk"
pytestmark = pytest.mark.slow


def test_late_labels_are_judged_and_serve_the_retrain_that_waited_for_them(loop, tmp_path):
    loop.ingest(DOMAIN, loop.batch(DOMAIN, seed=1))
    drifted = loop.batch(DOMAIN, seed=3, faults=["covariate_drift"], drift=1.0)
    waiting = loop.ingest(DOMAIN, drifted.drop(columns="has_claim"))
    assert waiting["retrain"]["waiting_for_labels"] is True and waiting["challenger"] is None
    assert waiting["estimate"]["value"] is not None and waiting["estimate"]["version"] == waiting["champion"]["version"]

    path = tmp_path / "labels.csv"
    drifted[["policy_id", "has_claim"]].to_csv(path, index=False)
    outcome = cli.land_labels(DOMAIN, path, run=True)  # what `continuum labels ... --run` does

    assert outcome["quarantined"] is False and outcome["batches"] == [waiting["batch_id"]]
    [labelled] = outcome["labelled_batches"]
    [decided] = outcome["decisions"]
    assert decided["batch_id"] == labelled and decided["finished"] is True
    assert decided["retrain"]["carried_from"] == [waiting["batch_id"]] and decided["challenger"] is not None
    assert not storage.exists(Keys(DOMAIN).retrain_request())  # served

    [entry] = [e for e in cli.status(DOMAIN)["performance"] if e["batch_id"] == waiting["batch_id"]]
    [realised] = entry["realised"]
    assert entry["estimated"] == waiting["estimate"]["value"] and realised["value"] is not None
    assert realised["labelled_batch"] == labelled and set(realised["segments"]) == {"north", "south", "east", "west"}
