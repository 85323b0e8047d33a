"""Prompt optimiser: propose new candidate versions from what failed, keep only measured gains.

In the spirit of GEPA: a meta-prompt shows the model the current prompt and a few of the
lowest-scoring conversations, asks it to reflect on what went wrong and to rewrite the
prompt; each child is scored by `evaluate` (the DAG replays and scores; tests pass a
plain function) and the best `population` survive to the next round. Alongside, a seeded
random search over temperature and top_p within bounds. Only versions that beat the base
are registered (through the injected `register`), as *candidates*: promotion stays with
the comparison on real conversations. One `random.Random(seed)` drives every choice, so a
deterministic backend and `evaluate` give the same proposals for the same seed.
"""

from __future__ import annotations

import logging
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
    register: Callable[[str, str, dict, str], str],
    temperature_bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    top_p_bounds: tuple[float, float] = TOP_P_BOUNDS,
    min_gain: float = 0.0,
    keep: int | None = None,
) -> list[dict[str, Any]]:
    """Search `rounds` x `population` variants; register and return those that beat the base by > `min_gain`.

    At most `keep` winners (default: the whole surviving population) are registered, best first.
    Cost: up to `rounds * population` meta-prompt calls and `1 + 2 * rounds * population` evaluations.
    `failures` are (redacted) conversations, lowest-scoring first or carrying a `score` key.
    Returns [{"version", "template", "params", "score"}], best first; empty when nothing beat the base.
    """
    if rounds < 0 or population < 1:
        raise ValueError(f"rounds must be >= 0 and population >= 1 (got {rounds}, {population})")
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
    summaries = [_summary(c) for c in _worst(failures)]
    for round_ in range(1, rounds + 1):
        children: list[_Candidate] = []
        for parent in _parents(pool, population):
            shown = rng.sample(summaries, min(FAILURES_PER_PROMPT, len(summaries)))
            template = _rewrite(backend, spec, parent.template, shown)
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

    winners = [c for c in pool if c.origin != "base" and c.score > base.score + min_gain][:keep]
    proposals = []
    for candidate in winners:
        message = (
            f"optimizer ({candidate.origin}, round {candidate.round}, seed {seed}): "
            f"score {candidate.score:.4f} vs base {base.score:.4f}"
        )
        version = register(_name(spec), candidate.template, dict(candidate.params), message)
        proposals.append(
            {
                "version": str(version),
                "template": candidate.template,
                "params": candidate.params,
                "score": candidate.score,
            }
        )
    log.info("optimizer_done assistant=%s proposals=%d base=%.4f", _name(spec), len(proposals), base.score)
    return proposals


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
    if template == parent.strip():
        return "unchanged prompt", ""
    if len(template) > 4 * len(parent) + 2000:
        return "rewritten prompt is far longer than the original", ""
    new_vars = set(_VARIABLE.findall(template)) - set(_VARIABLE.findall(parent))
    if new_vars:
        return f"new template variables {sorted(new_vars)}", ""
    guardrails = getattr(spec, "guardrails", None)
    disclaimer = getattr(guardrails, "required_disclaimer", None)
    if disclaimer and disclaimer in parent and disclaimer not in template:
        return "the required disclaimer was dropped", ""
    return None, template


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
