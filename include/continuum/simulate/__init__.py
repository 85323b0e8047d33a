"""Seeded data generators, one module per domain, with fault injection.

`generate("insurance_claim_risk", n=5000, seed=1, faults=["nulls"])` returns the
same frame for the same arguments, so demos, tests and benchmarks can name the
batch they mean. A domain module (see `insurance_claim_risk.py`) exposes
`generate(n, seed, *, covariate, concept)` and owns the two drifts, because only
it knows its features and its label model; every other fault is generic and works
from the data contract (`faults.py`). To add a domain, write its module and add it
to `DOMAINS`.

pandas and numpy are imported inside the functions: DAG files may import this
package at parse time.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DOMAINS: dict[str, str] = {
    "insurance_claim_risk": "continuum.simulate.insurance_claim_risk",
    "retail_recommender": "continuum.simulate.retail_recommender",
    "insurance_fraud": "continuum.simulate.insurance_fraud",
}
DRIFT_FAULTS = ("covariate_drift", "concept_drift")


def known_faults() -> list[str]:
    from continuum.simulate.faults import INJECTORS

    return [*DRIFT_FAULTS, *INJECTORS]


def generate(domain: str, n: int, seed: int, faults: Sequence[str] = (), drift: float = 0.0) -> pd.DataFrame:
    """`n` rows of `domain`'s data with `faults` applied in order.

    `drift` (0..1) is the strength of the drift faults named in `faults` (full
    strength, 1.0, when left at 0). With no drift fault named, `drift` > 0 alone
    means covariate drift of that strength.
    """
    import numpy as np

    from continuum.simulate.faults import INJECTORS
    from continuum.specs import get_domain

    module = _domain_module(domain)
    unknown = [f for f in faults if f not in (*DRIFT_FAULTS, *INJECTORS)]
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown}; known: {', '.join(known_faults())}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be between 0 and 1, got {drift}")
    strength = drift or 1.0
    named = {f for f in faults if f in DRIFT_FAULTS}
    covariate = strength if "covariate_drift" in named or (drift > 0 and not named) else 0.0
    concept = strength if "concept_drift" in named else 0.0
    frame = module.generate(n, seed, covariate=covariate, concept=concept)
    spec = get_domain(domain)
    for fault in faults:
        if fault in INJECTORS:
            # One generator per fault: adding a fault does not change how another one lands.
            rng = np.random.default_rng([seed, zlib.crc32(fault.encode())])
            frame = INJECTORS[fault](frame, spec, rng)
    return frame


def write(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` as CSV or Parquet, chosen by the file suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"cannot write '{path.name}': use a .csv or .parquet file name")
    return path


def _domain_module(domain: str):
    if domain not in DOMAINS:
        raise ValueError(
            f"no simulator for domain '{domain}' (have: {', '.join(sorted(DOMAINS))}); "
            f"add continuum/simulate/{domain}.py and register it in DOMAINS"
        )
    return importlib.import_module(DOMAINS[domain])
