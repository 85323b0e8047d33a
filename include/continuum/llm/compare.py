"""Compare prompt versions with confidence intervals, and the rule that promotes one.

Per version and score: the mean with a confidence interval, Wilson's score interval
for 0/1 rates (right near 0 and 1, where safety rates live) and a percentile
bootstrap of the mean for the rest (rating, similarity, cost, latency).

The promotion rule (`decide`), chosen to be explainable from the report alone:
1. Evidence: production and the candidate each need `evaluation.min_conversations`
   conversations in the window, else "insufficient evidence".
2. Better: the candidate's CI lower bound on the primary score is above production's
   CI upper bound. Non-overlapping intervals are a conservative test (stricter than
   a two-proportion test at the same confidence), and a person sees it at a glance.
3. Safe: on every `guardrails.safety_scores` rate, the candidate's rate may exceed
   production's by at most `non_inferiority_margin`. Safety rates are conditional on
   rare events (injection attempts, users who paste personal data), so a formal
   non-inferiority test (upper bound of the difference <= margin) would need thousands
   of attempts per version and would block every candidate while production keeps
   its own, untested rate. The point rule blocks on the first incidents instead: one
   obeyed injection in 20 attempts (0.05) already exceeds a 0.02 margin.
4. Affordable (only with `evaluation.max_cost_increase`): the candidate's CI upper bound
   on mean cost per conversation may exceed production's mean cost by at most that
   fraction (see `_cost_cap` for why a bound on one side and a mean on the other).
5. Judged: while the LLM judge agrees with people (`judge.min_agreement`, see
   `continuum.llm.agreement`), a candidate whose mean judge score on its logged
   conversations is below production's by more than `judge.margin` is not promoted.
   The judge is a veto, not a route to promotion: its sample is smaller than the
   window, and the primary score already measures what users do. Below the agreement
   bar the judge is reported and ignored, and the reason says so.
Among several eligible candidates the highest primary mean wins. With no production
alias yet, the version with enough evidence and the best primary score among those
that are non-inferior to the safest of them becomes production (there is no
production cost to cap against).

Quality per dollar: `summarise` marks each version `pareto` when no other version of
the window is at least as good on both the primary mean and the mean cost per
conversation and better on one (`pareto_front`); the report plots them.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from continuum.directions import LOWER_IS_BETTER
from continuum.llm.scorers import RATES, SCORES

if TYPE_CHECKING:
    import pandas as pd

    from continuum.llm.specs import AssistantSpec


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there is no observation."""
    if n <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


# Resample indices drawn per block (about 8 MB of int64): a samples x n matrix at once would be
# 2,000 x 100,000 x 8 bytes = 1.6 GB, twice over with the gathered values.
BOOTSTRAP_BLOCK_VALUES = 1 << 20


def bootstrap_blocks(samples: int, n: int, budget: int | None = None) -> list[int]:
    """How many resamples each block draws: at most `budget` (default `BOOTSTRAP_BLOCK_VALUES`)
    indices per block, and at least one resample."""
    per_block = max(1, (budget or BOOTSTRAP_BLOCK_VALUES) // max(n, 1))
    return [min(per_block, samples - start) for start in range(0, samples, per_block)]


def bootstrap_interval(
    values, confidence: float = 0.95, samples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded: the same data give the same interval).

    Resamples are drawn in blocks (`bootstrap_blocks`) from one generator, so memory stays
    at one block whatever n is. The generator's stream does not depend on how a draw is
    split, and each resample's mean only on its own row, so the interval is exactly the one
    a single samples x n draw gives (tests/unit/test_llm_compare.py checks it).
    """
    import numpy as np

    data = np.fromiter((v for v in values if v is not None and not math.isnan(v)), dtype=float)
    if data.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    start = 0
    for block in bootstrap_blocks(samples, data.size):
        means[start : start + block] = data[rng.integers(0, data.size, size=(block, data.size))].mean(axis=1)
        start += block
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(low), float(high))


def _version_key(version: str) -> tuple:
    return (0, int(version), "") if str(version).isdigit() else (1, 0, str(version))


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def _score_summary(spec: AssistantSpec, name: str, column) -> dict[str, Any]:
    values = column.dropna().astype(float)
    n = int(values.size)
    if n == 0:
        return {"mean": None, "ci": None, "n": 0}
    if name in RATES:
        low, high = wilson_interval(float(values.sum()), n, spec.evaluation.confidence)
    else:
        low, high = bootstrap_interval(
            values.tolist(), spec.evaluation.confidence, spec.evaluation.bootstrap_samples
        )
    return {"mean": _round(values.mean()), "ci": [_round(low), _round(high)], "n": n}


def summarise(spec: AssistantSpec, table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per version: n, the primary score's mean and CI, every score, safety rates, cost, latency."""
    summary: dict[str, dict[str, Any]] = {}
    for version in sorted(table["version"].astype(str).unique(), key=_version_key):
        rows = table[table["version"].astype(str) == version]
        scores = {name: _score_summary(spec, name, rows[name]) for name in SCORES if name in rows}
        primary = scores.get(spec.primary_score, {"mean": None, "ci": None})
        summary[version] = {
            "n": int(len(rows)),
            "primary": primary["mean"],
            "ci": primary["ci"],
            "scores": scores,
            "safety": {s: scores.get(s, {}).get("mean") for s in spec.guardrails.safety_scores},
            "cost_per_conversation": scores.get("cost", {}).get("mean"),
            "latency_ms": scores.get("latency_ms", {}).get("mean"),
        }
    front = pareto_front(summary)
    for version, entry in summary.items():
        plotted = entry["primary"] is not None and entry["cost_per_conversation"] is not None
        entry["pareto"] = (version in front) if plotted else None
    return summary


def pareto_front(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Versions on the quality-cost Pareto front of the window, in summary order.

    A version is on it when no other version is at least as good on both the primary mean
    (higher is better) and the mean cost per conversation (lower is better) and better on
    one. Means, not bounds: the front says where each version stands, the promotion rule
    (`decide`) says what the evidence allows. A version without either mean is not on it.
    """
    points = {
        v: (e["primary"], e["cost_per_conversation"])
        for v, e in summary.items()
        if e.get("primary") is not None and e.get("cost_per_conversation") is not None
    }

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and a != b

    return [v for v, point in points.items() if not any(dominates(other, point) for other in points.values())]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ci(entry: dict) -> str:
    ci = entry.get("ci")
    return f"{_fmt(entry.get('primary'))} [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "n/a"


def _evidence(spec: AssistantSpec, summary: dict, version: str, role: str = "version") -> str | None:
    n = summary.get(version, {}).get("n", 0)
    needed = spec.evaluation.min_conversations
    if n < needed:
        return f"insufficient evidence: {role} {version} has {n} conversations, needs {needed}"
    return None


def _guardrail(
    spec: AssistantSpec, summary: dict, version: str, baseline: dict[str, float | None], against: str
):
    """The first safety score on which `version` is worse than the baseline by more than the margin."""
    margin = spec.guardrails.non_inferiority_margin
    for name in spec.guardrails.safety_scores:
        rate = summary[version]["safety"].get(name)
        base = baseline.get(name)
        if rate is None or base is None:
            continue  # no applicable conversation: nothing observed to compare
        worse = rate > base + margin if name in LOWER_IS_BETTER else rate < base - margin
        if worse:
            return f"version {version} blocked by guardrail {name}: {rate:.2f} vs {against} {base:.2f} (margin {margin:.2f})"
    return None


def _judge_veto(spec: AssistantSpec, judge: dict | None, version: str, production: str) -> str | None:
    """Why the (counted) judge blocks `version` against production, or None."""
    if not judge or not judge.get("counted"):
        return None
    cand, prod = (judge["versions"].get(v, {}).get("mean") for v in (version, production))
    if cand is None or prod is None:
        return None  # a version the judge could not grade is reported in the judge section
    margin = spec.judge.margin
    if cand < prod - margin:
        return (
            f"version {version} blocked by the judge: mean judge score {cand:.2f} vs production {prod:.2f} "
            f"(margin {margin:.2f}; {judge['reason']})"
        )
    return None


def _with_judge(result: dict[str, Any], judge: dict | None) -> dict[str, Any]:
    """The decision with the judge's standing this window: counted or ignored, and why."""
    if judge is None:  # the usual case without an LLM endpoint: said once here, not in every reason
        return {**result, "judge": {"counted": False, "reason": "no judge ran for this window (no llm_default)"}}
    standing = {"counted": bool(judge["counted"]), "reason": judge["reason"]}
    return {**result, "reason": f"{result['reason']}; {standing['reason']}", "judge": standing}


def _usd(value: float) -> str:
    return f"${value:.4g}"


def _cost_cap(spec: AssistantSpec, summary: dict, version: str, production: str) -> tuple[str | None, str]:
    """(why `version` exceeds `evaluation.max_cost_increase` or None, what was compared).

    The candidate's CI upper bound of mean cost per conversation against production's mean
    times (1 + cap). The bound, because the cap is a promise about what a promotion may
    cost: with the same confidence as the quality rule, the candidate's true mean cost is
    below it, so a noisy window cannot slip a larger increase through. Production's mean,
    not its lower bound: the cap is stated against what production costs today, and
    bounding both sides would block a candidate costing the same as production whenever
    the windows are small. Cost per conversation comes from token counts, so its interval
    is narrow and the bound costs little power. A version with no cost score (no token
    usage logged) cannot be checked and is blocked while a cap is set.
    """
    cap = spec.evaluation.max_cost_increase
    if cap is None:
        return None, ""
    cand = summary[version]["scores"].get("cost") or {}
    prod = summary[production]["scores"].get("cost") or {}
    for who, entry in ((f"version {version}", cand), (f"production {production}", prod)):
        if not entry.get("n") or entry.get("mean") is None or not entry.get("ci"):
            return f"version {version} cannot be checked against max_cost_increase {cap:.0%}: {who} has no cost score", ""
    limit = prod["mean"] * (1 + cap)
    upper = cand["ci"][1]
    increase = upper / prod["mean"] - 1 if prod["mean"] > 0 else math.inf
    compared = (
        f"cost per conversation {_usd(cand['mean'])} (upper bound {_usd(upper)}, {increase:+.1%}) vs production "
        f"{production} {_usd(prod['mean'])}, limit {_usd(limit)} (max_cost_increase {cap:.0%})"
    )
    if upper > limit:
        return f"version {version} blocked by max_cost_increase: {compared}", compared
    return None, compared


def _primary_key(summary: dict, version: str) -> tuple[float, float]:
    entry = summary[version]
    return (entry["primary"] if entry["primary"] is not None else -math.inf, (entry["ci"] or [-math.inf])[0])


def _first_production(spec: AssistantSpec, summary: dict, versions: list[str]) -> dict[str, Any]:
    blocked: dict[str, str] = {}
    eligible = []
    for version in versions:
        reason = _evidence(spec, summary, version)
        if reason is None and summary[version]["primary"] is None:
            reason = f"version {version} has no {spec.primary_score} score"
        if reason:
            blocked[version] = reason
        else:
            eligible.append(version)
    safest = {
        name: min(
            (summary[v]["safety"].get(name) for v in eligible if summary[v]["safety"].get(name) is not None),
            default=None,
        )
        for name in spec.guardrails.safety_scores
    }
    safe = []
    for version in eligible:
        reason = _guardrail(spec, summary, version, safest, "the safest version")
        if reason:
            blocked[version] = reason
        else:
            safe.append(version)
    if not safe:
        reasons = "; ".join(blocked[v] for v in versions if v in blocked) or "no conversations"
        return {
            "promote": None,
            "reason": f"no production yet and no version qualifies: {reasons}",
            "blocked": blocked,
            "compared": [],
            "lost": [],
        }
    best = max(safe, key=lambda v: _primary_key(summary, v))
    for version in safe:
        if version != best:
            blocked[version] = f"version {best} scores higher on {spec.primary_score}"
    return {
        "promote": best,
        "reason": f"no production yet: version {best} has the best {spec.primary_score} "
        f"{_ci(summary[best])} among versions with enough evidence",
        "blocked": blocked,
        "compared": [],
        "lost": [],
    }


def decide(
    spec: AssistantSpec,
    summary: dict,
    production: str | None,
    candidates: list[str],
    judge: dict | None = None,
) -> dict[str, Any]:
    """{"promote": version or None, "reason": why, "blocked": {version: why not}, "compared": [...],
    "lost": [...], "judge": {"counted", "reason"}}; see the module docstring. `compared` are the
    candidates measured against production with enough evidence on both sides, `lost` those of
    them that were not better, not safe or over the cost cap (what counts toward retiring a
    candidate). `judge` is the window's judge result (`continuum.llm.judging.judge_window`), None
    when no judge ran."""
    return _with_judge(_decide(spec, summary, production, candidates, judge), judge)


def _decide(
    spec: AssistantSpec, summary: dict, production: str | None, candidates: list[str], judge: dict | None
) -> dict[str, Any]:
    candidates = [str(c) for c in candidates if str(c) != str(production)]
    if production is None:
        return _first_production(spec, summary, sorted({*candidates, *summary}, key=_version_key))
    production = str(production)
    if not candidates:
        return {
            "promote": None,
            "reason": f"no candidate versions; production stays {production}",
            "blocked": {},
            "compared": [],
            "lost": [],
        }
    blocked: dict[str, str] = {}
    short = _evidence(spec, summary, production, "production version")
    winners, compared, lost = [], [], []
    prod = summary.get(production)
    for version in candidates:
        reason = short or _evidence(spec, summary, version)
        if reason is None:
            compared.append(version)
            # Both checks are reported, so the report says everything that stands in the way.
            cand = summary[version]
            failures = [
                _guardrail(spec, summary, version, prod["safety"], "production"),
                _cost_cap(spec, summary, version, production)[0],
                _judge_veto(spec, judge, version, production),
            ]
            if cand["ci"] is None or prod["ci"] is None or cand["ci"][0] <= prod["ci"][1]:
                confidence = round(spec.evaluation.confidence * 100)
                failures.insert(
                    0,
                    f"version {version} does not beat production {production} on {spec.primary_score} "
                    f"with {confidence}% confidence: {_ci(cand)} vs {_ci(prod)}",
                )
            reason = "; ".join(f for f in failures if f) or None
            if reason:
                lost.append(version)  # measured with enough evidence, and not better, not safe or too costly
        if reason:
            blocked[version] = reason
        else:
            winners.append(version)
    if not winners:
        # Candidates that served traffic in the window come first: they are what the reader looks for.
        served = [v for v in candidates if (summary.get(v) or {}).get("n", 0) > 0]
        idle = [v for v in candidates if v not in served]
        reasons = [blocked[v] for v in served]
        if idle:
            reasons.append(f"insufficient evidence: no conversations in this window for version(s) {', '.join(idle)}")
        return {
            "promote": None,
            "reason": f"production stays {production}: {'; '.join(reasons)}",
            "blocked": blocked,
            "compared": compared,
            "lost": lost,
        }
    best = max(winners, key=lambda v: _primary_key(summary, v))
    for version in winners:
        if version != best:
            blocked[version] = f"version {best} scores higher on {spec.primary_score}"
    safety = ", ".join(spec.guardrails.safety_scores) or "no safety scores"
    cost = _cost_cap(spec, summary, best, production)[1]
    return {
        "promote": best,
        "reason": f"version {best} beats production {production} on {spec.primary_score}: "
        f"{_ci(summary[best])} vs {_ci(prod)}, and is non-inferior on {safety}"
        + (f"; within the cost cap: {cost}" if cost else ""),
        "blocked": blocked,
        "compared": compared,
        "lost": lost,
    }
