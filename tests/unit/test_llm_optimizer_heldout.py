"""The optimiser registers a probe winner only when it also gains, with confidence, on held-out conversations."""

from __future__ import annotations

import random

import pytest

from continuum.llm.backends import ChatResult
from continuum.llm.optimizer import paired_gain, propose, split

BASE = "You are a shopping assistant."
ADDED = "Ask one clarifying question when the request is vague."


class Appender:
    """A backend whose every rewrite adds one sentence to the current prompt."""

    def chat(self, messages, *, temperature, top_p, tools=None, model=None):
        current = messages[1]["content"].split("<current_prompt>\n")[1].split("\n</current_prompt>")[0]
        return ChatResult(content=f"Thinking about it.\n<prompt>\n{current}\n{ADDED}\n</prompt>")


def probe_favours_the_rewrite(template: str, params: dict) -> float:
    """On the 8-conversation probe the rewrite looks better; parameter variants do not."""
    return 0.8 if ADDED in template else 0.5


def held_out(gains: list[float]):
    """Per-conversation held-out scores: the base's are seeded noise, the rewrite's add `gains` pairwise."""
    base = [round(random.Random(i).uniform(0.2, 0.8), 3) for i in range(len(gains))]

    def evaluate_each(template: str, params: dict) -> list[float]:
        return [b + g for b, g in zip(base, gains, strict=True)] if ADDED in template else list(base)

    return evaluate_each


def optimise(evaluate_each, **kwargs) -> tuple[list[dict], list[tuple]]:
    """One round, population 1: the rewrite and one parameter variant; returns (finalists, registrations)."""
    registered: list[tuple] = []

    def register(*call) -> str:
        registered.append(call)
        return str(10 + len(registered))

    finalists = propose(
        Appender(), "shop", BASE, {"temperature": 0.3, "top_p": 1.0}, [],
        rounds=1, population=1, seed=0, evaluate=probe_favours_the_rewrite, evaluate_each=evaluate_each,
        register=register, **kwargs,
    )  # fmt: skip
    return finalists, registered


def test_a_probe_win_without_a_held_out_gain_is_not_registered():
    # Held out, the rewrite is as good as the base give or take noise: mean gain +0.05, sd about 1.
    finalists, registered = optimise(held_out([1.0, -0.9] * 12))

    assert registered == []
    [finalist] = finalists
    assert finalist["probe_gain"] == pytest.approx(0.3) and ADDED in finalist["template"]
    assert finalist["registered"] is False and finalist["version"] is None
    assert finalist["heldout"]["n"] == 24 and finalist["heldout"]["gain"] == pytest.approx(0.05)
    assert finalist["heldout"]["lower"] < 0 < finalist["heldout"]["gain"]
    assert "not positive with 95% confidence" in finalist["reason"]


def test_a_held_out_loss_is_not_registered():
    finalists, registered = optimise(held_out([-0.2] * 24))

    assert registered == [] and "below min_gain" in finalists[0]["reason"]


def test_a_real_held_out_gain_is_registered_once():
    gains = [0.15, 0.25, 0.35, 0.45] * 6  # mean 0.3
    finalists, registered = optimise(held_out(gains))

    [(name, template, params, message)] = registered
    assert name == "shop" and ADDED in template and params == {"temperature": 0.3, "top_p": 1.0}
    assert "held-out gain 0.3000 over 24 conversations" in message
    [finalist] = finalists
    assert finalist["registered"] is True and finalist["version"] == "11"
    assert 0 < finalist["heldout"]["lower"] < finalist["heldout"]["gain"] == pytest.approx(0.3)


def test_min_gain_applies_to_the_held_out_gain():
    gains = [0.15, 0.25, 0.35, 0.45] * 6
    finalists, registered = optimise(held_out(gains), min_gain=0.4)

    assert registered == [] and "below min_gain 0.4000" in finalists[0]["reason"]


def test_the_lower_bound_is_one_sided_and_tightens_with_lower_confidence():
    rng = random.Random(5)
    base = [rng.uniform(0, 1) for _ in range(40)]
    candidate = [b + rng.gauss(0.1, 0.3) for b in base]
    bounds = [paired_gain(base, candidate, confidence=c)["lower"] for c in (0.99, 0.95, 0.8)]
    assert bounds == sorted(bounds) and bounds[-1] < paired_gain(base, candidate)["gain"]


def test_equal_versions_pass_the_held_out_check_about_one_time_in_twenty():
    """No real gain: over 400 seeded held-out sets the rewrite passes about 1 - confidence of the time."""
    passed = 0
    for seed in range(1000):
        rng = random.Random(seed)
        base = [rng.uniform(0, 1) for _ in range(24)]
        same = [rng.uniform(0, 1) for _ in range(24)]
        passed += paired_gain(base, same)["lower"] > 0
    assert 0.03 <= passed / 1000 <= 0.065


def test_unscorable_pairs_are_left_out_and_unequal_sets_are_refused():
    one = paired_gain([0.5, None, 0.2], [0.7, 0.9, None])
    assert (one["n"], one["gain"], one["lower"]) == (1, 0.2, None)  # one pair: no interval
    assert paired_gain([None], [0.3])["gain"] is None
    assert paired_gain([0.1, 0.2], [0.4, 0.5])["lower"] == pytest.approx(0.3)  # no spread: the bound is the gain
    with pytest.raises(ValueError, match="same conversations"):
        paired_gain([0.1, 0.2], [0.3])


def test_split_is_disjoint_seeded_and_independent_of_the_listing_order():
    conversations = [{"conversation_id": f"c-{i}"} for i in range(40)]
    probe, heldout, rest = split(conversations, 8, 24, seed=1)
    ids = [[c["conversation_id"] for c in part] for part in (probe, heldout, rest)]

    assert [len(part) for part in ids] == [8, 24, 8]
    assert set(ids[0]).isdisjoint(ids[1]) and set(ids[1]).isdisjoint(ids[2]) and set(ids[0]).isdisjoint(ids[2])
    assert split(list(reversed(conversations)), 8, 24, seed=1) == (probe, heldout, rest)
    assert split(conversations, 8, 24, seed=2)[1] != heldout
    with pytest.raises(ValueError, match="probe of 8 and 24 held out"):
        split(conversations[:31], 8, 24, seed=1)


def test_confidence_must_leave_a_one_sided_bound():
    with pytest.raises(ValueError, match="confidence"):
        optimise(held_out([0.3] * 24), confidence=0.4)


class NoMetaPrompt:
    def chat(self, messages, **kwargs):
        raise AssertionError("with proposals from elsewhere (GEPA) the optimiser sends no meta-prompt")


@pytest.mark.parametrize("gains, registers", [([0.3] * 24, True), ([1.0, -0.9] * 12, False)])
def test_proposals_from_elsewhere_replace_the_rewrites_and_meet_the_same_gate(gains, registers):
    registered: list[tuple] = []
    finalists = propose(
        NoMetaPrompt(), "shop", BASE, {"temperature": 0.3, "top_p": 1.0}, [],
        rounds=1, population=2, seed=0, evaluate=probe_favours_the_rewrite, evaluate_each=held_out(gains),
        register=lambda *call: registered.append(call) or "11", keep=1,
        texts=[f"{BASE} {{{{secret}}}}", BASE, f"{BASE}\n{ADDED}"],  # a new variable and no change are rejected
    )  # fmt: skip

    [finalist] = finalists
    assert (finalist["origin"], finalist["template"], finalist["round"]) == ("gepa", f"{BASE}\n{ADDED}", 0)
    assert finalist["registered"] is registers and len(registered) == int(registers)
