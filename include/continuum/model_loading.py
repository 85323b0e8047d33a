"""Load a registered scikit-learn model without pickle and without trusting the artefact.

MLflow 3.17's `mlflow.sklearn.load_model` refuses every format, skops included, while
`MLFLOW_ALLOW_PICKLE_DESERIALIZATION` is false (Continuum pins it false: settings.PINNED_ENV),
and with it true it would load pickle and trust the skops type list written *in the
artefact itself*. So Continuum reads the skops file directly and trusts only the types
its own code allows below; a pickle-flavoured artefact or an unexpected type is refused.

This narrows what a forged artefact can do; it does not make the artefact store safe to
open to others: only the pipeline may write it (README, "Security").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Types skops may build on load beyond its own safe list: scikit-learn and Continuum classes
# (HistGradientBoosting's TreePredictor, the baselines) and numpy's dtype. Nothing from
# builtins, os, subprocess, functools or pickle-like modules.
TRUSTED_PREFIXES = ("sklearn.", "continuum.")
TRUSTED_TYPES = frozenset({"numpy.dtype"})


class UnsafeModel(RuntimeError):
    """A model artefact Continuum will not deserialise; the message names the model and why."""


def _refused(types: list[str]) -> list[str]:
    return sorted(t for t in types if t not in TRUSTED_TYPES and not t.startswith(TRUSTED_PREFIXES))


def check_sklearn(model_uri: str) -> tuple[Path, list[str]]:
    """The local skops file of `model_uri` and its types, once Continuum's allow-list accepts them.

    Raises UnsafeModel for a model not saved with skops or holding a type outside the allow-list.
    """
    import mlflow.artifacts
    import skops.io
    from mlflow.models import Model

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    flavor = Model.load(local).flavors.get("sklearn")
    if flavor is None:
        raise UnsafeModel(f"{model_uri} has no sklearn flavour; log it with mlflow.sklearn.log_model")
    fmt = flavor.get("serialization_format", "pickle")
    if fmt != "skops":
        raise UnsafeModel(
            f"{model_uri} is serialised with {fmt}, which runs code on load; retrain it so it is logged"
            " with serialization_format='skops'"
        )
    path = local / flavor["pickled_model"]
    untrusted = skops.io.get_untrusted_types(file=path)
    refused = _refused(untrusted)
    if refused:
        raise UnsafeModel(f"{model_uri} holds types outside Continuum's allow-list: {refused}; not loading it")
    return path, untrusted


def load_sklearn(model_uri: str) -> Any:
    """The scikit-learn object logged at `model_uri` (e.g. `models:/claims@champion`), checked by `check_sklearn`."""
    import skops.io

    path, untrusted = check_sklearn(model_uri)
    log.info("event=model_loaded uri=%s format=skops trusted_types=%d", model_uri, len(untrusted))
    return skops.io.load(path, trusted=untrusted)
