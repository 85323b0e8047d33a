"""Confidence intervals against known values, and the promotion rule's truth table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import probe_assistant
import pytest

from continuum.llm import compare
from continuum.llm.compare import bootstrap_interval, decide, summarise, wilson_interval
from continuum.llm.specs import AssistantSpec

SPEC = probe_assistant.spec(evaluation={"min_conversations": 150, "bootstrap_samples": 500})


def test_wilson_known_values():
    low, high = wilson_interval(50, 100, 0.95)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = wilson_interval(0, 30, 0.95)
    assert low == 0.0 and high == pytest.approx(0.1135, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow = wilson_interval(500, 1000, 0.95)
    assert narrow[1] - narrow[0] < high - low


def test_bootstrap_interval():
    rng = np.random.default_rng(1)
    values = rng.normal(10, 2, size=400)
    low, high = bootstrap_interval(values.tolist(), 0.95, 2000, seed=0)
    # normal theory: mean +- 1.96 * sd / sqrt(n)
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.05)
    assert high == pytest.approx(values.mean() + half, abs=0.05)
    assert bootstrap_interval(values.tolist(), 0.95, 500, seed=3) == bootstrap_interval(
        values.tolist(), 0.95, 500, seed=3
    )
    assert all(math.isnan(x) for x in bootstrap_interval([], 0.95, 100, 0))


def _whole_matrix_interval(values, confidence, samples, seed):
    """The bootstrap as it was before blocks: every resample drawn in one samples x n matrix."""
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(low), float(high))


@pytest.mark.parametrize("n", [2, 3, 401, 2000])
def test_blocked_bootstrap_gives_the_whole_matrix_interval(n, monkeypatch):
    """Blocks of odd sizes (budget 999) leave the generator's stream, so the interval, unchanged."""
    monkeypatch.setattr(compare, "BOOTSTRAP_BLOCK_VALUES", 999)
    values = np.random.default_rng(n).gamma(2.0, 3.0, size=n).tolist()
    assert len(compare.bootstrap_blocks(700, n)) > 1
    assert bootstrap_interval(values, 0.9, 700, seed=7) == _whole_matrix_interval(values, 0.9, 700, 7)


def test_bootstrap_never_draws_samples_by_n_at_once(monkeypatch):
    """Every draw of resample indices stays within the block budget, far below samples x n."""
    drawn = []
    real = np.random.default_rng

    class Recording:
        def __init__(self, seed):
            self.rng = real(seed)

        def integers(self, low, high, size):
            drawn.append(int(np.prod(size)))
            return self.rng.integers(low, high, size=size)

    monkeypatch.setattr(compare, "BOOTSTRAP_BLOCK_VALUES", 10_000)
    monkeypatch.setattr(np.random, "default_rng", Recording)
    bootstrap_interval(np.arange(5_000, dtype=float).tolist(), 0.95, 2000, seed=0)
    assert drawn and sum(drawn) == 2000 * 5_000
    assert max(drawn) <= 10_000


def table(version_rates: dict[str, tuple[int, float, int, float]]) -> pd.DataFrame:
    """{version: (n, outcome rate, injection attempts, obey rate)} -> a score table."""
    rows = []
    for version, (n, rate, attempts, obey) in version_rates.items():
        wins, obeyed = round(n * rate), round(attempts * obey)
        for i in range(n):
            rows.append(
                {
                    "conversation_id": f"{version}-{i}",
                    "version": version,
                    "outcome": float(i < wins),
                    "rating": 0.8,
                    "injection_obeyed": float(i < obeyed) if i < attempts else None,
                    "system_prompt_leaked": 0.0,
                    "pii_echoed": None,
                    "cost": 0.01 + (i % 3) * 0.001,
                    "latency_ms": 1000.0,
                }
            )
    return pd.DataFrame(rows)


def test_summarise_shape():
    summary = summarise(SPEC, table({"1": (200, 0.3, 20, 0.0), "10": (200, 0.4, 20, 0.1)}))
    assert list(summary) == ["1", "10"]
    v1 = summary["1"]
    assert v1["n"] == 200 and v1["primary"] == pytest.approx(0.3)
    assert v1["ci"] == pytest.approx(list(wilson_interval(60, 200)), abs=1e-6)
    assert v1["scores"]["injection_obeyed"]["n"] == 20
    assert v1["safety"] == {"injection_obeyed": 0.0, "system_prompt_leaked": 0.0, "pii_echoed": None}
    assert v1["cost_per_conversation"] == pytest.approx(0.011, abs=1e-3)
    assert v1["scores"]["cost"]["ci"][0] < 0.011 < v1["scores"]["cost"]["ci"][1]
    assert summary["10"]["safety"]["injection_obeyed"] == pytest.approx(0.1)


def test_better_and_safe_is_promoted():
    summary = summarise(SPEC, table({"3": (600, 0.30, 40, 0.0), "4": (600, 0.42, 40, 0.0)}))
    decision = decide(SPEC, summary, "3", ["4"])
    assert decision["promote"] == "4"
    assert "beats production 3 on outcome" in decision["reason"]


def test_better_but_obeys_injections_is_blocked():
    summary = summarise(SPEC, table({"3": (600, 0.30, 40, 0.0), "4": (600, 0.45, 40, 0.2)}))
    decision = decide(SPEC, summary, "3", ["4"])
    assert decision["promote"] is None
    assert "version 4 blocked by guardrail injection_obeyed: 0.20 vs production 0.00" in decision["reason"]
    assert "injection_obeyed" in decision["blocked"]["4"]
    assert decision["lost"] == ["4"]  # a loss toward retirement


def _judge(counted: bool, means: dict[str, float]) -> dict:
    reason = "judge counted: Cohen's kappa with people 0.80 >= 0.60 on 120 conversations" if counted else (
        "judge not counted: Cohen's kappa with people 0.31 < min_agreement 0.60 on 120 conversations"
    )
    return {"counted": counted, "reason": reason, "versions": {v: {"mean": m} for v, m in means.items()}}


def test_a_counted_judge_vetoes_a_candidate_it_grades_worse():
    summary = summarise(SPEC, table({"3": (600, 0.30, 40, 0.0), "4": (600, 0.42, 40, 0.0)}))
    decision = decide(SPEC, summary, "3", ["4"], _judge(True, {"3": 0.80, "4": 0.60}))
    assert decision["promote"] is None and decision["lost"] == ["4"]
    assert "version 4 blocked by the judge: mean judge score 0.60 vs production 0.80 (margin 0.05" in decision["reason"]
    assert decision["judge"]["counted"] is True


def test_a_judge_within_its_margin_or_not_counted_does_not_veto():
    summary = summarise(SPEC, table({"3": (600, 0.30, 40, 0.0), "4": (600, 0.42, 40, 0.0)}))
    close = decide(SPEC, summary, "3", ["4"], _judge(True, {"3": 0.80, "4": 0.76}))
    assert close["promote"] == "4" and close["reason"].endswith("on 120 conversations")
    ignored = decide(SPEC, summary, "3", ["4"], _judge(False, {"3": 0.80, "4": 0.20}))
    assert ignored["promote"] == "4"
    assert "judge not counted: Cohen's kappa with people 0.31 < min_agreement 0.60" in ignored["reason"]
    assert ignored["judge"] == {"counted": False, "reason": _judge(False, {})["reason"]}


def test_not_better_with_confidence_is_kept():
    summary = summarise(SPEC, table({"3": (600, 0.30, 40, 0.0), "4": (600, 0.33, 40, 0.0)}))
    decision = decide(SPEC, summary, "3", ["4"])
    assert decision["promote"] is None
    assert "does not beat production 3" in decision["blocked"]["4"]
    assert (decision["compared"], decision["lost"]) == (["4"], ["4"])


def test_too_few_conversations_is_insufficient_evidence():
    summary = summarise(SPEC, table({"3": (600, 0.30, 40, 0.0), "4": (37, 0.9, 5, 0.0)}))
    decision = decide(SPEC, summary, "3", ["4"])
    assert decision["promote"] is None
    assert "insufficient evidence: version 4 has 37 conversations, needs 150" in decision["reason"]
    missing = decide(SPEC, summary, "3", ["5"])
    assert "insufficient evidence: no conversations in this window for version(s) 5" in missing["reason"]
    assert "version 5 has 0 conversations" in missing["blocked"]["5"]
    assert decision["lost"] == missing["lost"] == []  # not measured is not lost
    short_production = decide(
        SPEC, summarise(SPEC, table({"3": (40, 0.1, 5, 0.0), "4": (600, 0.9, 40, 0.0)})), "3", ["4"]
    )
    assert short_production["promote"] is None
    assert "insufficient evidence: production version 3 has 40 conversations" in short_production["reason"]


def test_best_of_several_candidates():
    summary = summarise(
        SPEC,
        table(
            {
                "1": (600, 0.2, 40, 0.0),
                "2": (600, 0.35, 40, 0.0),
                "3": (600, 0.45, 40, 0.0),
                "4": (600, 0.6, 40, 0.5),
            }
        ),
    )
    decision = decide(SPEC, summary, "1", ["2", "3", "4"])
    assert decision["promote"] == "3"
    assert "scores higher" in decision["blocked"]["2"]
    assert "guardrail injection_obeyed" in decision["blocked"]["4"]
    assert decision["lost"] == ["4"] and decision["compared"] == ["2", "3", "4"]  # 2 beat production: no loss


def test_no_production_picks_best_safe_version_with_evidence():
    summary = summarise(
        SPEC,
        table(
            {
                "1": (300, 0.3, 40, 0.0),
                "2": (300, 0.5, 40, 0.4),
                "3": (300, 0.4, 40, 0.0),
                "4": (20, 0.9, 5, 0.0),
            }
        ),
    )
    decision = decide(SPEC, summary, None, ["2", "3", "4"])
    assert decision["promote"] == "3"
    assert "insufficient evidence" in decision["blocked"]["4"]
    assert "guardrail injection_obeyed" in decision["blocked"]["2"]
    nothing = decide(SPEC, summarise(SPEC, table({"1": (20, 0.3, 0, 0.0)})), None, [])
    assert nothing["promote"] is None and "insufficient evidence" in nothing["reason"]


def test_no_candidates_keeps_production():
    summary = summarise(SPEC, table({"3": (600, 0.30, 40, 0.0)}))
    assert decide(SPEC, summary, "3", ["3"]) == {
        "promote": None,
        "reason": "no candidate versions; production stays 3",
        "blocked": {},
        "compared": [],
        "lost": [],
        "judge": {"counted": False, "reason": "no judge ran for this window (no llm_default)"},
    }


# -- quality per dollar: the cost cap and the Pareto front ---------------------------------------


def capped(cap: float | None) -> AssistantSpec:
    return probe_assistant.spec(evaluation={"min_conversations": 150, "bootstrap_samples": 500, "max_cost_increase": cap})


def priced(frame: pd.DataFrame, version: str, factor: float) -> pd.DataFrame:
    """The score table with `version`'s cost per conversation multiplied by `factor`."""
    frame = frame.copy()
    rows = frame["version"] == version
    frame.loc[rows, "cost"] = frame.loc[rows, "cost"] * factor
    return frame


WINNER = {"3": (600, 0.30, 40, 0.0), "4": (600, 0.42, 40, 0.0)}  # 4 beats 3 with confidence, safely


def test_cost_cap_blocks_a_candidate_that_wins_on_quality():
    summary = summarise(SPEC, priced(table(WINNER), "4", 1.5))
    assert decide(capped(None), summary, "3", ["4"])["promote"] == "4"  # no cap: quality wins
    decision = decide(capped(0.10), summary, "3", ["4"])
    assert decision["promote"] is None
    reason = decision["blocked"]["4"]
    assert reason.startswith("version 4 blocked by max_cost_increase: cost per conversation $0.0165")
    assert "vs production 3 $0.011, limit $0.0121 (max_cost_increase 10%)" in reason
    assert "+5" in reason  # the increase at the bound, about +50%
    assert reason in decision["reason"] and decision["lost"] == ["4"]  # counts toward retiring it


def test_cost_cap_allows_a_candidate_under_it():
    summary = summarise(SPEC, priced(table(WINNER), "4", 1.05))
    decision = decide(capped(0.10), summary, "3", ["4"])
    assert decision["promote"] == "4"
    assert "within the cost cap: cost per conversation $0.01155" in decision["reason"]
    assert decision["lost"] == []


def test_cost_cap_compares_the_candidates_upper_bound_not_its_mean():
    frame = table(WINNER)
    rows = frame["version"] == "4"
    frame.loc[rows, "cost"] = [0.0119 + (0.006 if i % 2 else -0.006) for i in range(int(rows.sum()))]
    summary = summarise(SPEC, frame)
    cost = summary["4"]["scores"]["cost"]
    limit = summary["3"]["cost_per_conversation"] * 1.10
    assert cost["mean"] < limit < cost["ci"][1]  # +8% on the mean, but the bound is over +10%
    assert "blocked by max_cost_increase" in decide(capped(0.10), summary, "3", ["4"])["blocked"]["4"]


def test_cost_cap_blocks_a_candidate_without_cost():
    frame = table(WINNER)
    frame.loc[frame["version"] == "4", "cost"] = None
    decision = decide(capped(0.10), summarise(SPEC, frame), "3", ["4"])
    assert decision["promote"] is None
    assert "cannot be checked against max_cost_increase 10%: version 4 has no cost score" in decision["blocked"]["4"]


def test_pareto_front_on_a_hand_made_summary():
    points = {"1": (0.3, 0.01), "2": (0.5, 0.02), "3": (0.4, 0.03), "4": (0.3, 0.01), "5": (0.2, 0.01), "6": (None, 0.001)}
    summary = {v: {"primary": q, "cost_per_conversation": c} for v, (q, c) in points.items()}
    # 3 is dominated by 2 (better and cheaper), 5 by 1 (as cheap, better); 1 and 4 tie: neither dominates
    assert compare.pareto_front(summary) == ["1", "2", "4"]
    marked = summarise(SPEC, priced(table({"1": (200, 0.3, 20, 0.0), "2": (200, 0.5, 20, 0.0)}), "2", 0.5))
    assert (marked["1"]["pareto"], marked["2"]["pareto"]) == (False, True)  # 2 is better and cheaper


def test_the_readme_cost_cap_loads_on_the_shopping_assistant():
    import re
    from pathlib import Path

    import yaml

    from continuum.llm.specs import get_assistant

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("**Quality per dollar.**", 1)[1].split("**Tool schemas with the prompt.**", 1)[0]
    (example,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    raw = get_assistant("shopping_assistant").model_dump(mode="json")
    raw["evaluation"] |= yaml.safe_load(example)["evaluation"]
    assert AssistantSpec.model_validate(raw).evaluation.max_cost_increase == 0.10
