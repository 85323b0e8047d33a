"""The champion served online by MLflow (`continuum serve`) answers a real request with the batch scores' probabilities.

`mlflow models serve -m models:/<domain>@champion` is how a team puts the champion behind an
HTTP endpoint: it must load the artefact the loop registered (S3 artefacts, the alias the
promotion moved) and predict exactly what `<domain>_score` wrote for the same rows.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

DOMAIN = "insurance_claim_risk"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _invocations(port: int, frame) -> list:
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"]


def _wait_until_serving(server: subprocess.Popen, port: int, log: Path, deadline_s: float = 240) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"mlflow models serve did not answer /ping in {deadline_s:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(900)
def test_mlflow_serves_the_champion_alias_with_the_batch_scores_predictions(loop, tmp_path):
    import pandas as pd

    from continuum import registry, serving, specs, storage, training

    batch = loop.batch(DOMAIN, n=3000, seed=7)
    record = loop.ingest(DOMAIN, batch)
    assert record["promoted"] and record["scores"], record
    spec = specs.get_domain(DOMAIN)
    champion = registry.champion(DOMAIN)
    assert champion is not None and champion.version == record["challenger"]["version"]
    scores = pd.read_parquet(io.BytesIO(storage.get_bytes(storage.Keys(DOMAIN).scores(record["batch_id"]))))

    port, log = _free_port(), tmp_path / "serve.log"
    serve = serving.command(DOMAIN, port=port)
    assert serve.model_uri == f"models:/{DOMAIN}/{champion.version}"  # the alias, resolved once and checked
    with log.open("w") as out:
        server = subprocess.Popen(serve.argv, stdout=out, stderr=subprocess.STDOUT, env=serve.env,
                                  start_new_session=True)
    try:
        _wait_until_serving(server, port, log)
        rows = batch.set_index(spec.data.id_column).loc[scores[spec.data.id_column].head(200)].reset_index()
        inputs = training.model_inputs(spec, registry.load_champion(DOMAIN), rows)
        served = np.asarray(_invocations(port, inputs), dtype="float64")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
    assert served.shape == (200, 2), served.shape  # the pyfunc predicts probabilities, one column per class
    expected = scores["claim_probability"].head(200).to_numpy()
    np.testing.assert_allclose(served[:, 1], expected, rtol=0, atol=1e-9)
