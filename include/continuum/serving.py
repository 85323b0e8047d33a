"""Serve a domain's champion online with `mlflow models serve`, after Continuum's artefact check.

MLflow's scoring server loads the model with `mlflow.sklearn`, which refuses everything while
`MLFLOW_ALLOW_PICKLE_DESERIALIZATION` is false (Continuum's pin) and, when it is true, trusts
the skops type list written in the artefact itself. So the server process alone gets the
setting true, and only for a version whose artefact `model_loading.check_sklearn` has
accepted first. The version is pinned (`models:/<domain>/<version>`), resolved from the
champion alias once, so a promotion between the check and the load cannot swap in an
artefact nobody checked; serve again after a promotion.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from continuum import model_loading, registry


class NoChampion(LookupError):
    """The domain has no champion to serve."""


@dataclass(frozen=True)
class ServeCommand:
    argv: list[str]
    env: dict[str, str]
    model_uri: str
    version: str


def command(domain: str, port: int = 5001, host: str = "127.0.0.1", workers: int = 1) -> ServeCommand:
    """The `mlflow models serve` command for the champion of `domain` (the current environment's MLflow).

    Raises NoChampion when the alias is unset and UnsafeModel when the artefact fails the
    check; an MLflow error propagates (it is not an absence).
    """
    champion = registry.champion(domain)
    if champion is None:
        raise NoChampion(f"{domain} has no champion yet: land a batch (continuum ingest {domain} FILE --run)")
    uri = f"models:/{domain}/{champion.version}"
    model_loading.check_sklearn(uri)
    bin_dir = Path(sys.executable).parent  # mlflow runs uvicorn from PATH: this environment's
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",  # this process only, after check_sklearn (module doc)
    }
    argv = [
        str(bin_dir / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local",
        "--host", host, "-p", str(port), "--workers", str(workers),
    ]
    return ServeCommand(argv, env, uri, champion.version)
