"""Generated domains (the path `make bench` parses at 3/30/300) give their DAGs; a task process builds one DAG.

Speed is measured in benchmarks/bench_parsing.py, not asserted here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is a top-level package next to include/, not installed
    sys.path.insert(0, str(REPO))

from benchmarks.bench_parsing import generate_specs  # noqa: E402

DOMAINS_FILE = str(REPO / "dags" / "continuum_domains.py")
DAG_ID = re.compile(r"^[a-z0-9_]+_(land|decide)$")


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=DOMAINS_FILE)


def test_thirty_generated_domains_give_thirty_times_their_dags(tmp_path, monkeypatch):
    from continuum.specs import load_domains

    shipped = len(load_domains()[0])
    names = generate_specs(30, tmp_path / "specs")
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path / "specs"))
    bag = _bag()
    assert bag.import_errors == {}
    assert len(bag.dags) == 2 * (shipped + 30)
    assert all(DAG_ID.match(dag_id) for dag_id in bag.dag_ids), sorted(bag.dag_ids)
    for name in names:
        assert {f"{name}_land", f"{name}_decide"} <= set(bag.dag_ids)
        assert set(bag.dags[f"{name}_decide"].tags) == {name, "decide"}


def test_a_task_process_builds_only_the_dag_it_runs(tmp_path, monkeypatch):
    """The task runner names its DAG in the parsing context; the file then builds that one DAG only."""
    generate_specs(3, tmp_path / "specs")
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path / "specs"))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "gen0001_insurance_fraud_decide")
    bag = _bag()
    assert bag.import_errors == {}
    assert bag.dag_ids == ["gen0001_insurance_fraud_decide"]
    assert "score" in bag.dags["gen0001_insurance_fraud_decide"].task_ids
