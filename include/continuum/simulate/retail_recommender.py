"""Seeded impressions for `retail_recommender`: did a user buy the product a shop showed them?

One row is one impression of a product to a user in a context (device, hour,
weekday). The shop's catalogue and customers are fixed (seeded by constants, not
by the batch seed), so `user_id` and `item_id` mean the same thing in every batch,
as they do in a real shop; each batch draws a new week of impressions.

The true purchase probability mixes what the rules baseline sees (item
popularity, a match with the user's preferred category) with what it ignores:
price against the user's price sensitivity, and device-by-hour habits (phones in
the evening, desktops in office hours, tablets at weekends). So a learned model
has something real to beat the rules with.

- covariate drift moves the context and the catalogue's recent sales (more phone
  traffic, later hours, more weekend sessions, a promotion lifting every item's
  popularity) while the purchase model stays the same;
- concept drift changes the purchase model: price sensitivity flips (sensitive
  users now buy premium items, a trade-up season) and the popular items are the
  ones people already own, so a champion trained before the change ranks
  impressions badly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NAME = "retail_recommender"

CATEGORIES = ["electronics", "fashion", "home", "beauty", "sports", "books"]
CATEGORY_PRICE = {
    "electronics": 220.0,
    "fashion": 60.0,
    "home": 90.0,
    "beauty": 30.0,
    "sports": 75.0,
    "books": 18.0,
}
N_ITEMS = 60
N_USERS = 400
CATALOGUE_SEED = 20_240_601  # fixed: the same shop in every batch
DEVICES = ["mobile", "desktop", "tablet"]
DEVICE_P = np.array([0.55, 0.35, 0.10])
DEVICE_P_DRIFTED = np.array([0.80, 0.12, 0.08])
WEEKEND_SHARE = 2 / 7
# The customer's age band: a protected attribute in the spec (kept out of the model, measured for fairness).
AGE_BANDS = ["18-24", "25-34", "35-49", "50-64", "65+"]
AGE_BAND_P = np.array([0.15, 0.27, 0.28, 0.20, 0.10])
PROMOTION_LIFT = 1.8  # covariate drift: a sale lifts every item's recent purchase rate


def catalogue() -> dict[str, np.ndarray]:
    """The shop's items: id, category, price and a hidden appeal that drives sales."""
    rng = np.random.default_rng(CATALOGUE_SEED)
    category = rng.choice(CATEGORIES, size=N_ITEMS)
    base = np.array([CATEGORY_PRICE[c] for c in category])
    return {
        "item_id": np.arange(1, N_ITEMS + 1, dtype="int64"),
        "item_category": category,
        "item_price": np.round(base * rng.lognormal(0.0, 0.5, N_ITEMS), 2),
        "appeal": rng.normal(0.0, 1.0, N_ITEMS),
    }


def customers() -> dict[str, np.ndarray]:
    """The shop's users: id, preferred category, price sensitivity (0 = indifferent, 1 = very)."""
    rng = np.random.default_rng(CATALOGUE_SEED + 1)
    return {
        "user_id": np.arange(1001, 1001 + N_USERS, dtype="int64"),
        "user_preferred_category": rng.choice(CATEGORIES, size=N_USERS),
        "user_price_sensitivity": np.round(rng.beta(0.9, 0.9, N_USERS), 3),
        "activity": rng.lognormal(0.0, 0.6, N_USERS),
        # Drawn from its own generator so the other attributes stay what they were.
        "customer_age_band": np.random.default_rng(CATALOGUE_SEED + 2).choice(
            AGE_BANDS, size=N_USERS, p=AGE_BAND_P
        ),
    }


def generate(n: int, seed: int, *, covariate: float = 0.0, concept: float = 0.0) -> pd.DataFrame:
    """`n` impressions in the spec's column order; `covariate`/`concept` in [0, 1] set the drift strength."""
    rng = np.random.default_rng(seed)
    f = _features(rng, n, covariate)
    logit = (1.0 - concept) * _purchase_logit(f) + concept * _drifted_logit(f)
    purchased = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    start = int(rng.integers(0, 10**8 - n))
    return pd.DataFrame(
        {
            "impression_id": [f"IMP-{start + i:08d}" for i in rng.permutation(n)],
            "user_id": f["user_id"],
            "customer_age_band": f["customer_age_band"],
            "item_id": f["item_id"],
            "item_category": f["item_category"],
            "user_preferred_category": f["user_preferred_category"],
            "item_popularity": f["item_popularity"],
            "item_price": f["item_price"],
            "user_price_sensitivity": f["user_price_sensitivity"],
            "device": f["device"],
            "hour_of_day": f["hour_of_day"],
            "is_weekend": f["is_weekend"],
            "purchased": purchased,
        }
    )


def _features(rng: np.random.Generator, n: int, covariate: float) -> dict[str, np.ndarray]:
    items, users = catalogue(), customers()
    u = rng.choice(N_USERS, size=n, p=users["activity"] / users["activity"].sum())
    # The shop shows appealing items more often, but shows every item.
    show = np.exp(0.4 * items["appeal"])
    i = rng.choice(N_ITEMS, size=n, p=show / show.sum())
    popularity = _popularity(items["appeal"][i], rng, covariate)
    device = rng.choice(DEVICES, size=n, p=(1 - covariate) * DEVICE_P + covariate * DEVICE_P_DRIFTED)
    weekend = rng.random(n) < WEEKEND_SHARE + 0.25 * covariate
    hour = np.rint(rng.normal(14.0 + 4.0 * covariate, 4.5, n)) % 24
    return {
        "user_id": users["user_id"][u],
        "item_id": items["item_id"][i],
        "item_category": items["item_category"][i],
        "user_preferred_category": users["user_preferred_category"][u],
        "customer_age_band": users["customer_age_band"][u],
        "item_popularity": popularity,
        "item_price": items["item_price"][i],
        "user_price_sensitivity": users["user_price_sensitivity"][u],
        "device": device,
        "hour_of_day": hour.astype("int64"),
        "is_weekend": weekend,
    }


def _popularity(appeal: np.ndarray, rng: np.random.Generator, covariate: float) -> np.ndarray:
    """An item's recent purchase rate: its appeal seen through a week of noisy sales."""
    rate = 0.06 * np.exp(0.7 * appeal) * rng.lognormal(0.0, 0.15, appeal.size)
    return np.round(np.clip(rate * (1.0 + (PROMOTION_LIFT - 1.0) * covariate), 0.0, 1.0), 4)


def _price_term(f: dict[str, np.ndarray]) -> np.ndarray:
    """log price relative to its category's usual price: > 0 for premium items."""
    usual = np.array([CATEGORY_PRICE[c] for c in f["item_category"]])
    return np.log(f["item_price"] / usual)


def _context_term(f: dict[str, np.ndarray]) -> np.ndarray:
    """Device-by-hour habits: phones sell in the evening, desktops in office hours, tablets at weekends."""
    hour, device, weekend = f["hour_of_day"], f["device"], f["is_weekend"]
    evening = (hour >= 18) & (hour <= 23)
    office = (hour >= 9) & (hour <= 17) & ~weekend
    night = hour <= 5
    return (
        1.1 * ((device == "mobile") & evening)
        - 0.8 * ((device == "mobile") & office)
        + 0.9 * ((device == "desktop") & office)
        - 0.7 * ((device == "desktop") & weekend)
        + 1.0 * ((device == "tablet") & weekend)
        - 1.0 * night
    )


def _purchase_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """The stable purchase model: about 7% of impressions convert."""
    sensitivity = f["user_price_sensitivity"]
    return (
        -3.8
        + 0.85 * np.log(f["item_popularity"] / 0.06)
        + 0.9 * (f["item_category"] == f["user_preferred_category"])
        - 5.0 * (sensitivity - 0.35) * _price_term(f)
        + 1.5 * _context_term(f)
    )


def _drifted_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """After the change: sensitive users trade up, and the best sellers are the ones people already own."""
    sensitivity = f["user_price_sensitivity"]
    return (
        -3.4
        - 0.9 * np.log(f["item_popularity"] / 0.06)
        + 3.0 * (sensitivity - 0.3) * _price_term(f)
        - 0.5 * _context_term(f)
    )
