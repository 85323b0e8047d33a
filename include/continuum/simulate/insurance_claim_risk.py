"""Seeded policies for `insurance_claim_risk`, with a claim label from a known logistic model.

The label follows a plausible actuarial story (young drivers, powerful cars, past
claims, a high bonus-malus, long distances and city driving raise the risk), so a
model trained on it learns something real and the two kinds of drift have an
honest meaning:

- covariate drift moves the features (a new market: older drivers in newer small cars,
  longer distances, more rural policies, most of them in the south) while the risk
  model stays the same;
- concept drift keeps the features and changes the risk model (claims now come from
  older drivers of small cars in the country, and are more frequent), so a
  champion trained before the change gets it wrong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NAME = "insurance_claim_risk"

REGIONS = ["north", "south", "east", "west"]
REGION_P = np.array([0.30, 0.25, 0.25, 0.20])
REGION_P_DRIFTED = np.array([0.10, 0.55, 0.20, 0.15])
URBAN_P = {"north": 0.65, "south": 0.45, "east": 0.55, "west": 0.35}

VEHICLE_TYPES = ["sedan", "suv", "hatchback", "van", "sports"]
VEHICLE_P = np.array([0.35, 0.25, 0.25, 0.10, 0.05])
VEHICLE_P_DRIFTED = np.array([0.20, 0.20, 0.45, 0.10, 0.05])  # the small-car wave
VEHICLE_POWER = {"sedan": 110.0, "suv": 150.0, "hatchback": 80.0, "van": 100.0, "sports": 280.0}

ANNUAL_KM_NULL_SHARE = 0.03
# The driver's age band: a protected attribute in the spec (kept out of the model, measured for fairness).
AGE_BANDS = (18, 25, 40, 65)
AGE_BAND_NAMES = ["18-24", "25-39", "40-64", "65+"]


def age_band(age: np.ndarray) -> np.ndarray:
    return np.array(AGE_BAND_NAMES, dtype=object)[np.searchsorted(AGE_BANDS, age, side="right") - 1]


def generate(n: int, seed: int, *, covariate: float = 0.0, concept: float = 0.0) -> pd.DataFrame:
    """`n` policies in the spec's column order; `covariate`/`concept` in [0, 1] set the drift strength."""
    rng = np.random.default_rng(seed)
    features = _features(rng, n, covariate)
    logit = (1.0 - concept) * _risk_logit(features) + concept * _drifted_logit(features)
    has_claim = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    start = int(rng.integers(0, 10**8 - n))
    policy_id = [f"P-{start + i:08d}" for i in rng.permutation(n)]
    km = features["annual_km"].copy()
    km[rng.random(n) < ANNUAL_KM_NULL_SHARE] = np.nan
    return pd.DataFrame(
        {
            "policy_id": policy_id,
            "driver_age": features["driver_age"],
            "driver_age_band": age_band(features["driver_age"]),
            "vehicle_age": features["vehicle_age"],
            "vehicle_power": features["vehicle_power"],
            "region": features["region"],
            "vehicle_type": features["vehicle_type"],
            "annual_km": km,
            "prior_claims": features["prior_claims"],
            "bonus_malus": features["bonus_malus"],
            "urban": features["urban"],
            "has_claim": has_claim,
        }
    )


def _features(rng: np.random.Generator, n: int, covariate: float) -> dict[str, np.ndarray]:
    region = rng.choice(REGIONS, size=n, p=(1 - covariate) * REGION_P + covariate * REGION_P_DRIFTED)
    urban_p = np.array([URBAN_P[r] for r in region]) - 0.25 * covariate
    vehicle_type = rng.choice(VEHICLE_TYPES, size=n, p=(1 - covariate) * VEHICLE_P + covariate * VEHICLE_P_DRIFTED)
    base_power = np.array([VEHICLE_POWER[v] for v in vehicle_type])
    age = rng.normal(46.0 + 8.0 * covariate, 14.0, n)
    prior_claims = np.clip(rng.poisson(0.35, n), 0, 20)
    return {
        "driver_age": np.clip(np.rint(age), 18, 100).astype("int64"),
        "vehicle_age": np.clip(rng.poisson(6.0 - 3.0 * covariate, n), 0, 40).astype("int64"),
        "vehicle_power": np.clip(np.rint(base_power * rng.lognormal(0.0, 0.2, n)), 40, 500).astype("int64"),
        "region": region,
        "vehicle_type": vehicle_type,
        "urban": rng.random(n) < np.clip(urban_p, 0.0, 1.0),
        "annual_km": np.clip(
            np.round(rng.lognormal(np.log(12000) + 0.3 * covariate, 0.45, n), -1), 0, 200000
        ),
        "prior_claims": prior_claims.astype("int64"),
        "bonus_malus": np.clip(np.round(1.0 + 0.3 * prior_claims + rng.normal(0, 0.25, n), 2), 0.5, 3.5),
    }


def _risk_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """The stable risk model: about 10% of policies claim."""
    young = np.clip(30.0 - f["driver_age"], 0, None) / 5.0
    return (
        -3.7
        + 0.9 * young
        + 0.016 * (f["vehicle_power"] - 120.0)
        + 0.6 * f["prior_claims"]
        + 1.2 * (f["bonus_malus"] - 1.0)
        + 1.0 * np.log(f["annual_km"] / 12000.0)
        + 0.7 * f["urban"]
    )


def _drifted_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """After the change: claims are frequent, and come from the policies that used to be safe."""
    return -1.0 + 0.06 * (f["driver_age"] - 46.0) - 0.015 * (f["vehicle_power"] - 120.0) - 0.8 * f["urban"]
