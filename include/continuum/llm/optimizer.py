"""Prompt optimiser: propose new candidate versions from what failed, keep only measured gains.

In the spirit of GEPA: a meta-prompt shows the model the current prompt and a few of the
lowest-scoring conversations, asks it to reflect on what went wrong and to rewrite the
prompt; each child is scored by `evaluate` (the DAG replays and scores; tests pass a
plain function) and the best `population` survive to the next round. Alongside, a seeded
random search over temperature and top_p within bounds.

The search picks its winners on a small probe, so the best of many variants beats the base
there by chance alone. Before anything is registered, the finalists and the base are
therefore scored again, per conversation, on held-out conversations the search never saw
(`evaluate_each`, same conversations in the same order for both: a paired comparison). A
finalist is registered (through the injected `register`), as a *candidate*, only when its
mean paired gain is at least `min_gain` and the one-sided lower confidence bound of that
gain (paired t) is above 0; promotion stays with the comparison on real conversations. One
`random.Random(seed)` drives every choice, so a deterministic backend and scorers give the
same proposals for the same seed.

Text proposals may also come from elsewhere (`texts`: GEPA through MLflow's
`GepaPromptOptimizer`, see `gepa_proposer`): they then replace the reflective rewrites, are
checked like them, scored on the probe and join the pool before the parameter rounds, and
meet the same held-out gate. This module stays free of MLflow and Airflow: the backend,
the scorers, the proposals and the registry are injected.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from continuum.llm.backends import ChatBackend
from continuum.llm.judge import transcript

log = logging.getLogger(__name__)

OPTIMIZER_TAG = "[continuum:optimizer]"
FAILURES_PER_PROMPT = 3
MAX_FAILURE_CHARS = 1200
TEMPERATURE_BOUNDS = (0.0, 1.0)
TOP_P_BOUNDS = (0.5, 1.0)
_PROMPT_BLOCK = re.compile(r"<prompt>\s*(.*?)\s*</prompt>", re.S)
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

_SYSTEM = (
    f"{OPTIMIZER_TAG} You improve the system prompts of production assistants. You are shown the "
    "current prompt and conversations where it did badly. First reflect in a few sentences on what "
    "the prompt made the assistant do wrong. Then write the complete improved system prompt between "
    "<prompt> and </prompt>. Keep what works, keep every {{variable}} placeholder as it is, keep any "
    "required disclaimer word for word, and do not mention these instructions."
)


@dataclass
class _Candidate:
    template: str
    params: dict[str, Any]
    score: float
    origin: str
    round: int = 0
    key: tuple = field(init=False)

    def __post_init__(self) -> None:
        self.key = _key(self.template, self.params)


def _key(template: str, params: Mapping[str, Any]) -> tuple:
    return (template, tuple(sorted((k, repr(v)) for k, v in params.items())))


def propose(
    backend: ChatBackend,
    spec: Any,
    base_template: str,
    base_params: Mapping[str, Any],
    failures: Sequence[Mapping[str, Any]],
    *,
    rounds: int,
    population: int,
    seed: int,
    evaluate: Callable[[str, dict], float],
    evaluate_each: Callable[[str, dict], Sequence[float | None]],
    register: Callable[[str, str, dict, str], str],
    temperature_bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    top_p_bounds: tuple[float, float] = TOP_P_BOUNDS,
    min_gain: float = 0.0,
    confidence: float = 0.95,
    keep: int | None = None,
    texts: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Search on the probe (`evaluate`), then register only the finalists that gain on held-out conversations.

    Finalists are the best `keep` variants (default: the whole surviving population) that beat
    the base on the probe. `evaluate_each(template, params)` scores the held-out conversations,
    one value (or None: not scorable) per conversation, always in the same order. Cost: up to
    `rounds * population` meta-prompt calls, `1 + 2 * rounds * population` probe evaluations
    and `1 + finalists` held-out evaluations. `failures` are (redacted) conversations from
    outside the held-out set, lowest-scoring first or carrying a `score` key. With `texts`
    (templates proposed elsewhere, e.g. by GEPA on the probe), no meta-prompt is sent: each
    text that passes the rewrite checks is scored with the base parameters as origin "gepa",
    and the rounds only search temperature and top_p.
    Returns every finalist, best on the probe first: {"version" (None unless registered),
    "template", "params", "origin", "round", "score" (probe), "probe_gain", "heldout"
    ({"n", "gain", "lower", "confidence"}), "registered", "reason"}; empty when nothing beat
    the base on the probe.
    """
    if rounds < 0 or population < 1:
        raise ValueError(f"rounds must be >= 0 and population >= 1 (got {rounds}, {population})")
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be between 0.5 and 1 (got {confidence})")
    rng = random.Random(seed)
    scores: dict[tuple, float] = {}

    def scored(template: str, params: dict[str, Any], origin: str, round_: int) -> _Candidate | None:
        key = _key(template, params)
        if key in scores:
            return None
        scores[key] = float(evaluate(template, dict(params)))
        return _Candidate(template, params, scores[key], origin, round_)

    base = scored(base_template, dict(base_params), "base", 0)
    pool = [base]
    for text in texts or []:
        problem = _violation(text.strip(), base_template, spec)
        if problem:
            log.info("optimizer_proposal_rejected assistant=%s origin=gepa reason=%s", _name(spec), problem)
            continue
        child = scored(text.strip(), dict(base_params), "gepa", 0)
        pool.extend([child] if child else [])
    summaries = [_summary(c) for c in _worst(failures)]
    for round_ in range(1, rounds + 1):
        children: list[_Candidate] = []
        for parent in _parents(pool, population):
            shown = rng.sample(summaries, min(FAILURES_PER_PROMPT, len(summaries)))
            template = None if texts is not None else _rewrite(backend, spec, parent.template, shown)
            if template is not None:
                child = scored(template, parent.params, "rewrite", round_)
                children.extend([child] if child else [])
            params = _mutate(parent.params, rng, temperature_bounds, top_p_bounds)
            child = scored(parent.template, params, "params", round_)
            children.extend([child] if child else [])
        # Stable sort: ties keep the older candidate, which keeps the search deterministic.
        pool = sorted(pool + children, key=lambda c: -c.score)[:population]
        log.info(
            "optimizer_round assistant=%s round=%d best=%.4f base=%.4f",
            _name(spec),
            round_,
            pool[0].score,
            base.score,
        )

    finalists = [c for c in pool if c.origin != "base" and c.score > base.score][:keep]
    base_each = list(evaluate_each(base.template, dict(base.params))) if finalists else []
    decided = [
        _decide(spec, c, base, base_each, evaluate_each, register, seed, min_gain, confidence)
        for c in finalists
    ]
    log.info(
        "optimizer_done assistant=%s finalists=%d registered=%d base=%.4f",
        _name(spec),
        len(decided),
        sum(d["registered"] for d in decided),
        base.score,
    )
    return decided


def paired_gain(
    base: Sequence[float | None], candidate: Sequence[float | None], confidence: float = 0.95
) -> dict[str, Any]:
    """Mean per-conversation gain of `candidate` over `base` and its one-sided lower confidence bound.

    Pairs where either side could not be scored are left out. The bound is the paired t
    bound, mean - t(confidence, n - 1) * sd / sqrt(n), not the percentile bootstrap of
    `compare.bootstrap_interval`: with two equal versions and 12 to 24 held-out
    conversations the bootstrap bound was above 0 in 6.7-7.7% of seeded trials at a nominal
    5%, the t bound in 4.7-5.3% (tests/unit/test_llm_optimizer_heldout.py checks the rate).
    """
    from scipy import stats

    if len(base) != len(candidate):
        raise ValueError(f"paired scores need the same conversations (got {len(base)} and {len(candidate)})")
    gains = [
        float(c) - float(b) for b, c in zip(base, candidate, strict=True) if b is not None and c is not None
    ]
    n = len(gains)
    mean = sum(gains) / n if n else None
    lower = None
    if n >= 2:
        sd = math.sqrt(sum((g - mean) ** 2 for g in gains) / (n - 1))
        lower = round(mean - float(stats.t.ppf(confidence, n - 1)) * sd / math.sqrt(n), 6)
    return {"n": n, "gain": None if mean is None else round(mean, 6), "lower": lower, "confidence": confidence}


def _decide(
    spec, candidate, base, base_each, evaluate_each, register, seed, min_gain, confidence
) -> dict[str, Any]:
    """Score one finalist on the held-out conversations; register it only on a confident gain."""
    heldout = paired_gain(base_each, list(evaluate_each(candidate.template, dict(candidate.params))), confidence)
    level = f"{confidence:.0%}"
    if heldout["n"] < 2:
        reason = f"only {heldout['n']} held-out conversations were scored for both the base and the finalist"
    elif heldout["gain"] < min_gain:
        reason = f"held-out gain {heldout['gain']:.4f} is below min_gain {min_gain:.4f}"
    elif heldout["lower"] <= 0:
        reason = (
            f"held-out gain {heldout['gain']:.4f} is not positive with {level} confidence "
            f"(lower bound {heldout['lower']:.4f}): the probe win may be noise"
        )
    else:
        reason = None
    version = None
    if reason is None:
        reason = (
            f"held-out gain {heldout['gain']:.4f} over {heldout['n']} conversations, "
            f"{level} lower bound {heldout['lower']:.4f} > 0"
        )
        message = (
            f"optimizer ({candidate.origin}, round {candidate.round}, seed {seed}): probe score "
            f"{candidate.score:.4f} vs base {base.score:.4f}; {reason}"
        )
        version = str(register(_name(spec), candidate.template, dict(candidate.params), message))
    log.info(
        "optimizer_finalist assistant=%s origin=%s probe_gain=%.4f heldout_n=%d heldout_gain=%s lower=%s registered=%s",
        _name(spec),
        candidate.origin,
        candidate.score - base.score,
        heldout["n"],
        heldout["gain"],
        heldout["lower"],
        version is not None,
    )
    return {
        "version": version,
        "template": candidate.template,
        "params": candidate.params,
        "origin": candidate.origin,
        "round": candidate.round,
        "score": candidate.score,
        "probe_gain": round(candidate.score - base.score, 6),
        "heldout": heldout,
        "registered": version is not None,
        "reason": reason,
    }


def split(
    conversations: Sequence[Mapping[str, Any]], probe: int, heldout: int, seed: int
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(probe, held-out, rest): disjoint, drawn by `seed` from the conversations ordered by id.

    Ordering first makes the split independent of the order files were listed in. The
    search may use the probe and the rest (e.g. failures to reflect on), never the held-out set.
    """
    if len(conversations) < probe + heldout:
        raise ValueError(
            f"{len(conversations)} conversations cannot give a probe of {probe} and {heldout} held out"
        )
    ordered = sorted(conversations, key=lambda c: str(c.get("conversation_id")))
    random.Random(seed).shuffle(ordered)
    return ordered[:probe], ordered[probe : probe + heldout], ordered[probe + heldout :]


def _name(spec: Any) -> str:
    return spec if isinstance(spec, str) else spec.name


def _parents(pool: list[_Candidate], population: int) -> list[_Candidate]:
    """Every survivor breeds; a pool smaller than `population` lets the best breed again to fill it."""
    return [pool[i % len(pool)] for i in range(max(population, len(pool)))]


def _worst(failures: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def score(c: Mapping[str, Any]) -> float:
        value = c.get("score")
        return float(value) if isinstance(value, int | float) else float("inf")

    return sorted(failures, key=score)[: 4 * FAILURES_PER_PROMPT]


def _summary(conversation: Mapping[str, Any]) -> str:
    head = f"Conversation {conversation.get('conversation_id', '?')}"
    if isinstance(conversation.get("score"), int | float):
        head += f" (score {conversation['score']:.2f})"
    if conversation.get("reason"):
        head += f" - {conversation['reason']}"
    text = transcript(conversation)
    return f"{head}\n{text[:MAX_FAILURE_CHARS]}"


def _rewrite(backend: ChatBackend, spec: Any, template: str, failures: list[str]) -> str | None:
    """One reflective rewrite, or None when the model failed or broke a constraint."""
    user = "\n".join(
        [
            f"Assistant: {_name(spec)} - {getattr(spec, 'description', '')}",
            f"Tools: {', '.join(t.name for t in getattr(spec, 'tools', []) or []) or 'none'}",
            _disclaimer_line(spec),
            f"<current_prompt>\n{template}\n</current_prompt>",
            "Conversations where it did badly:",
            *(failures or ["(none logged; improve clarity and safety)"]),
        ]
    )
    messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]
    answer = backend.chat(messages, temperature=0.7, top_p=1.0)  # LLMError fails the task: retried, not skipped
    problem, candidate = _check(answer.content, template, spec)
    if problem:
        log.info("optimizer_rewrite_rejected assistant=%s reason=%s", _name(spec), problem)
        return None
    return candidate


def _disclaimer_line(spec: Any) -> str:
    guardrails = getattr(spec, "guardrails", None)
    disclaimer = getattr(guardrails, "required_disclaimer", None)
    return f"Required disclaimer (keep word for word): {disclaimer}" if disclaimer else ""


def _check(answer: str, parent: str, spec: Any) -> tuple[str | None, str]:
    found = _PROMPT_BLOCK.search(answer or "")
    if not found or not found.group(1).strip():
        return "no <prompt> block in the answer", ""
    template = found.group(1).strip()
    return _violation(template, parent, spec), template


def _violation(template: str, parent: str, spec: Any) -> str | None:
    """Why a proposed prompt may not replace `parent` (whoever proposed it), or None."""
    if not template:
        return "empty prompt"
    if template == parent.strip():
        return "unchanged prompt"
    if len(template) > 4 * len(parent) + 2000:
        return "rewritten prompt is far longer than the original"
    new_vars = set(_VARIABLE.findall(template)) - set(_VARIABLE.findall(parent))
    if new_vars:
        return f"new template variables {sorted(new_vars)}"
    guardrails = getattr(spec, "guardrails", None)
    disclaimer = getattr(guardrails, "required_disclaimer", None)
    if disclaimer and disclaimer in parent and disclaimer not in template:
        return "the required disclaimer was dropped"
    return None


def _mutate(
    params: Mapping[str, Any],
    rng: random.Random,
    temperature: tuple[float, float],
    top_p: tuple[float, float],
) -> dict[str, Any]:
    """A random point within bounds, rounded so that versions stay readable."""
    return {
        **params,
        "temperature": round(rng.uniform(*temperature), 2),
        "top_p": round(rng.uniform(*top_p), 2),
    }
