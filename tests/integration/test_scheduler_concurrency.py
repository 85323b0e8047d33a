"""Under the real scheduler (`make run`): batches landed together, and a training task killed mid-fit.

One platform session (each start costs a minute or more): a domain of its own whose
schedule (`* * * * *`) makes every batch ask for a retrain once its champion is a minute
old; every other DAG is paused. Two batches land in the same minute, then five. The
first training task of the session pauses inside `fit` (`CONTINUUM_TEST_PAUSE_IN_FIT`,
inert unless set) and the test SIGKILLs its process there; Airflow's own retry (2 s delay
here, `CONTINUUM_RETRY_DELAY_SECONDS`) must rerun it and end as an undisturbed run would.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from test_local_platform import check_airflow, http, platform_env, start, stop_and_check, wait_ready

from continuum import settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(4800)]
DOMAIN = "race_claim_risk"
SOURCE = "insurance_claim_risk"  # its simulator and contract, under another name
DECIDE = f"{DOMAIN}_decide"


def domain_spec(directory: Path) -> Path:
    """The shipped insurance domain, renamed, retraining every minute, with a quicker model."""
    text = (settings.REPO_ROOT / "include" / "domains" / f"{SOURCE}.yaml").read_text()
    text = text.replace(f"name: {SOURCE}", f"name: {DOMAIN}").replace('schedule: "@weekly"', 'schedule: "* * * * *"')
    text = text.replace("max_iter: 200", "max_iter: 30")
    assert f"name: {DOMAIN}" in text and "* * * * *" in text and "max_iter: 30" in text
    directory.mkdir(parents=True)
    (directory / f"{DOMAIN}.yaml").write_text(text)
    return directory


def pause_all_but(base: str, token: str, keep: str) -> None:
    dags = http("GET", f"{base}/api/v2/dags?limit=1000", token=token)[1]["dags"]
    assert any(d["dag_id"] == DECIDE for d in dags), [d["dag_id"] for d in dags]
    for dag in dags:
        if not dag["dag_id"].startswith(keep):
            http("PATCH", f"{base}/api/v2/dags/{dag['dag_id']}", {"is_paused": True}, token=token)


def land(batches: list) -> list[str]:
    from continuum import landing, storage

    ids = []
    for number, frame in enumerate(batches):
        data = frame.to_csv(index=False).encode()
        landing.land_file(DOMAIN, f"batch-{number}.csv", data)
        ids.append(storage.batch_id_for(data))
    return ids


def wait_finished(batch_ids: list[str], minutes: float, on_poll=None) -> None:
    from continuum import decision

    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        if on_poll is not None:
            on_poll()
        if all(decision.load(DOMAIN, b).finished for b in batch_ids):
            return
        time.sleep(2)
    states = {b: decision.load(DOMAIN, b).steps for b in batch_ids}
    pytest.fail(f"not all batches finished within {minutes} minutes: {states}")


class Killer:
    """SIGKILLs the process that paused inside `fit`, once, after checking it is the `train` task's."""

    def __init__(self, marker: Path, base: str, token: str):
        self.marker, self.base, self.token = marker, base, token
        self.killed: dict | None = None

    def __call__(self) -> None:
        if self.killed is not None or not self.marker.exists() or not self.marker.read_text().strip():
            return
        pid = int(self.marker.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        running = http("GET", f"{self.base}/api/v2/dags/{DECIDE}/dagRuns?state=running", token=self.token)[1]
        [run] = running["dag_runs"]
        train = http(
            "GET", f"{self.base}/api/v2/dags/{DECIDE}/dagRuns/{run['dag_run_id']}/taskInstances/train", token=self.token
        )[1]
        assert train["state"] == "running" and cmdline == f"airflow worker -- {train['id']}", (cmdline, train)
        os.kill(pid, signal.SIGKILL)  # the task process, in the middle of fit; its supervisor survives
        self.killed = {"run_id": run["dag_run_id"], "pid": pid}


def model_versions() -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    return list(client.search_model_versions(f"name='{DOMAIN}'"))


def check_decisions(ids: list[str]) -> None:
    """Arrival order, `champion_before` chains, one version per batch, at most one promotion each."""
    from continuum import decision, storage
    from continuum.storage import Keys

    keys = Keys(DOMAIN)
    arrival = sorted(ids, key=lambda b: storage.get_json(keys.manifest(b))["queued_at"])
    finished_at = {o["Key"]: o["LastModified"] for o in storage.list_objects(f"batches/{DOMAIN}/")}
    records = [decision.load(DOMAIN, b) for b in arrival]
    assert all(r.finished and not r.quarantined for r in records)
    decided = sorted(arrival, key=lambda b: finished_at[keys.decision(b)])
    assert decided == arrival  # decided one after the other, oldest first

    champion = None
    for record in records:
        if record.challenger is not None:  # judged against the champion it was to replace
            assert (record.champion_before.version if record.champion_before else None) == champion, record
        if record.promoted:
            assert record.promotion.previous == champion
            champion = record.challenger.version
        assert (record.champion.version if record.champion else None) == champion

    versions = model_versions()
    per_batch = Counter((v.tags.get("batch_id"), v.tags.get("role")) for v in versions)
    assert all(count == 1 for count in per_batch.values()), per_batch  # no duplicate versions
    challengers = {r.challenger.version for r in records if r.challenger is not None}
    assert challengers == {str(v.version) for v in versions if v.tags.get("role") == "challenger"}
    promoted = [str(v.version) for v in versions if v.tags.get("promoted_at")]
    assert sorted(promoted, key=int) == [r.challenger.version for r in records if r.promoted]  # one per decision
    trained = [r.challenger.version for r in records if r.challenger is not None]
    assert trained == sorted(trained, key=int)  # trained in arrival order


def test_batches_landed_together_and_a_killed_training_task_under_the_scheduler(tmp_path, monkeypatch):
    from continuum import decision, simulate, storage

    home = tmp_path / "home"
    marker = tmp_path / "pause-in-fit"
    env = platform_env(
        home,
        CONTINUUM_DOMAINS_PATH=str(domain_spec(tmp_path / "domains")),
        CONTINUUM_SIMULATOR="off",
        CONTINUUM_RETRY_DELAY_SECONDS="2",
        CONTINUUM_TEST_PAUSE_IN_FIT=str(marker),
    )
    supervisor, running = start(env), {}
    try:
        running = wait_ready(supervisor, home)
        token = check_airflow(env)
        base = f"http://127.0.0.1:{env['CONTINUUM_AIRFLOW_PORT']}"
        pause_all_but(base, token, keep=f"{DOMAIN}_")
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{env['CONTINUUM_S3_PORT']}")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{env['CONTINUUM_MLFLOW_PORT']}")
        storage.client.cache_clear()

        frames = [simulate.generate(SOURCE, n=800, seed=300 + i) for i in range(7)]
        first = land(frames[:2])  # two in the same minute; the first one's training is killed mid-fit
        killer = Killer(marker, base, token)
        wait_finished(first, minutes=25, on_poll=killer)  # limits for a loaded machine, not assertions
        assert killer.killed is not None, "no training paused inside fit"

        together = land(frames[2:])  # then five
        wait_finished(together, minutes=50)

        check_decisions(first + together)
        # The killed task: Airflow's own retry reran it, and it ended as an undisturbed run would.
        run_id = killer.killed["run_id"]
        train = http("GET", f"{base}/api/v2/dags/{DECIDE}/dagRuns/{run_id}/taskInstances/train", token=token)[1]
        assert train["state"] == "success" and train["try_number"] == 2, train
        xcom = http(
            "GET", f"{base}/api/v2/dags/{DECIDE}/dagRuns/{run_id}/taskInstances/next_batch/xcomEntries/return_value",
            token=token,
        )[1]
        killed_batch = xcom["value"].strip('"')
        assert killed_batch == first[0]  # the oldest batch's run
        record = decision.load(DOMAIN, killed_batch)
        assert record.finished and record.challenger is not None
        own = [str(v.version) for v in model_versions() if v.tags.get("batch_id") == killed_batch]
        assert own == [record.challenger.version]  # exactly one model version for that batch
        decisions = [k for k in storage.list_keys(f"batches/{DOMAIN}/{killed_batch}/") if k.endswith("decision.json")]
        assert len(decisions) == 1
    finally:
        storage.client.cache_clear()
        if supervisor.poll() is None:
            stop_and_check(supervisor, home, running.get("children", {}))
