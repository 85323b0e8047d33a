"""Seeded auto claims for `insurance_fraud`, with a fraud label from a known logistic model.

About 2.5% of claims are fraudulent, and fraud follows the patterns investigators
know: a theft or fire claimed soon after the policy started, for close to the
vehicle's value, reported late, at night, with no witness, no police report and
no partner garage. The signal is strong where those signs pile up, so a model can
flag a slice of claims at useful precision; that is what the primary metric
(recall at precision 0.5) measures.

- covariate drift moves the claims (more thefts, costlier repairs, more night
  incidents, a reporting backlog) while the fraud model stays the same;
- concept drift keeps the claims and changes the fraud: a ring stages collisions
  and glass claims through partner garages, with friendly witnesses and police
  reports, reported at once, so a champion that learned the old signs misses it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NAME = "insurance_fraud"

CLAIM_TYPES = ["collision", "theft", "glass", "fire", "liability"]
CLAIM_P = np.array([0.45, 0.08, 0.25, 0.04, 0.18])
CLAIM_P_DRIFTED = np.array([0.35, 0.25, 0.20, 0.06, 0.14])
SHADY_SHARE = 0.03  # claims by opportunists; their claims carry the warning signs together
SHADY_CLAIM_P = np.array([0.40, 0.20, 0.17, 0.08, 0.15])
# Typical claim size as a share of the vehicle's value.
CLAIM_SHARE = {"collision": 0.15, "theft": 0.85, "glass": 0.03, "fire": 0.7, "liability": 0.2}


def generate(n: int, seed: int, *, covariate: float = 0.0, concept: float = 0.0) -> pd.DataFrame:
    """`n` claims in the spec's column order; `covariate`/`concept` in [0, 1] set the drift strength."""
    rng = np.random.default_rng(seed)
    f = _features(rng, n, covariate)
    logit = (1.0 - concept) * _fraud_logit(f) + concept * _drifted_logit(f)
    is_fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    start = int(rng.integers(0, 10**8 - n))
    return pd.DataFrame(
        {
            "claim_id": [f"C-{start + i:08d}" for i in rng.permutation(n)],
            **{name: f[name] for name in _FEATURE_ORDER},
            "is_fraud": is_fraud,
        }
    )


_FEATURE_ORDER = (
    "policy_tenure_months",
    "claim_amount",
    "vehicle_value",
    "days_since_policy_start",
    "report_delay_days",
    "witness_present",
    "police_report",
    "claim_type",
    "prior_claims",
    "garage_network",
    "hour_of_incident",
)


def _features(rng: np.random.Generator, n: int, covariate: float) -> dict[str, np.ndarray]:
    """Claims, a few of them from opportunists whose claims carry several warning signs at once.

    The opportunists only shape the features; the label comes from the features
    alone (`_fraud_logit`), so covariate drift leaves P(fraud | claim) unchanged.
    """
    shady = rng.random(n) < SHADY_SHARE
    types = np.where(
        shady,
        rng.choice(CLAIM_TYPES, size=n, p=SHADY_CLAIM_P),
        rng.choice(CLAIM_TYPES, size=n, p=(1 - covariate) * CLAIM_P + covariate * CLAIM_P_DRIFTED),
    )
    vehicle_value = np.clip(np.round(rng.lognormal(np.log(18000), 0.55, n), -2), 500, 300000)
    share = np.array([CLAIM_SHARE[t] for t in types]) * rng.lognormal(np.where(shady, 0.9, 0.0), 0.5, n)
    amount = vehicle_value * np.clip(share, 0.005, 1.3) * (1.0 + 0.25 * covariate)
    night = rng.random(n) < np.where(shady, 0.45, 0.10 + 0.1 * covariate)
    hour = np.where(night, rng.integers(0, 6, n), np.clip(np.rint(rng.normal(14.0, 3.5, n)), 6, 23))
    witness_p = np.where(np.isin(types, ["collision", "liability"]), 0.55, 0.2)
    police_p = np.where(np.isin(types, ["theft", "fire", "liability"]), 0.8, 0.35)
    garage_p = np.where(types == "glass", 0.8, 0.5)
    start = np.where(shady, rng.exponential(25.0, n), rng.uniform(0, 366, n))
    return {
        "policy_tenure_months": np.clip(
            np.rint(rng.exponential(np.where(shady, 6.0, 40.0), n)), 0, 600
        ).astype("int64"),
        "claim_amount": np.clip(np.round(amount, 2), 0.0, 500000.0),
        "vehicle_value": vehicle_value,
        "days_since_policy_start": np.clip(np.floor(start), 0, 365).astype("int64"),
        "report_delay_days": np.clip(
            np.rint(rng.exponential(np.where(shady, 12.0, 3.0 + 3.0 * covariate), n)), 0, 365
        ).astype("int64"),
        "witness_present": rng.random(n) < np.where(shady, 0.1, witness_p),
        "police_report": rng.random(n) < np.where(shady, 0.3, police_p),
        "claim_type": types,
        "prior_claims": np.clip(rng.poisson(np.where(shady, 1.0, 0.4), n), 0, 20).astype("int64"),
        "garage_network": rng.random(n) < np.where(shady, 0.2, garage_p),
        "hour_of_incident": hour.astype("int64"),
    }


def _fraud_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """The stable fraud model: about 2.5% of claims, concentrated where the classic signs pile up."""
    typical = np.array([CLAIM_SHARE[t] for t in f["claim_type"]]) * f["vehicle_value"]
    inflated = np.clip(np.log(f["claim_amount"] / typical), 0.0, 2.0)  # dear for its kind of claim
    return (
        -9.9
        + 0.8 * np.isin(f["claim_type"], ["theft", "fire"])
        + 2.5 * inflated
        + 2.0 * (f["days_since_policy_start"] < 45)
        + 1.0 * (f["policy_tenure_months"] < 6)
        + 1.6 * np.log1p(f["report_delay_days"]) / np.log(31.0)
        + 1.6 * (f["hour_of_incident"] < 5)
        + 1.5 * ~f["witness_present"]
        + 1.5 * ~f["police_report"]
        + 1.2 * ~f["garage_network"]
        + 0.5 * f["prior_claims"]
    )


def _drifted_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """After the change: staged collisions and glass claims through partner garages, reported at once."""
    return (
        -8.0
        + 1.8 * np.isin(f["claim_type"], ["collision", "glass"])
        + 1.5 * f["garage_network"]
        + 1.2 * f["witness_present"]
        + 0.8 * f["police_report"]
        + 1.2 * (f["report_delay_days"] == 0)
        + 0.8 * (f["policy_tenure_months"] > 60)
        + 0.5 * ((f["hour_of_incident"] >= 9) & (f["hour_of_incident"] <= 17))
    )
