"""Continuum's offline scorers as `mlflow.genai` scorers, and the window's GenAI evaluation runs.

`scorers_for(spec, references, conversations)` wraps every score of `scorers.score_conversation`
as an `mlflow.genai.scorers.scorer`, so `mlflow.genai.evaluate` computes exactly the values
Continuum's comparison uses (same function, same reference set). `evaluate_window` runs them
for each prompt version of a window in a run of its own (`genai-<window>-v<version>`), so
MLflow's GenAI evaluation view shows the per-conversation results per version. Statistics,
guardrails and promotion stay Continuum's (`compare`), computed from the score table.

`mlflow.genai.evaluate` logs a trace and an assessment per row and scorer: 11.2 s for 10
conversations and the 12 scorers on a SQLite store (2 shared cores, MLflow 3.17), about 2 s
per conversation measured earlier on a busier machine, so only
`evaluation.genai_max_conversations` per window are sent (0, the default: off), spread evenly
over the versions and chosen by conversation id so a rerun sends the same ones. A version's
run that already finished is not evaluated again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from continuum import storage
from continuum.llm.scorers import DESCRIPTIONS, SCORES, score_conversation, version_of

if TYPE_CHECKING:
    from continuum.llm.specs import AssistantSpec

log = logging.getLogger(__name__)


def row(conv: dict) -> dict[str, Any]:
    """A conversation as a `mlflow.genai.evaluate` row: the dialogue as inputs, the last answer as output."""
    messages = conv.get("messages") or []
    answers = [m for m in messages if m.get("role") == "assistant" and m.get("content")]
    return {
        "inputs": {
            "conversation_id": str(conv["conversation_id"]),
            "prompt_version": version_of(conv),
            "messages": messages,
        },
        "outputs": answers[-1]["content"] if answers else "",
    }


def scorers_for(
    spec: AssistantSpec, references: list[dict], conversations: list[dict], tools: list | None = None
) -> list[Any]:
    """One `mlflow.genai` scorer per Continuum score, reading the conversation by its id.

    A scorer gets a row's inputs and outputs only; the rest of the conversation (usage,
    latency, outcome) is looked up by `conversation_id` among `conversations`. `tools` are
    the schemas of the version that served them, as the score table uses (default: the spec's).
    """
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    from continuum.llm.scorers import assistant_text

    by_id = {str(c["conversation_id"]): c for c in conversations}
    texts = [assistant_text(c) for c in references]
    cache: dict[str, dict] = {}

    def scores(inputs: dict) -> dict:
        conversation_id = inputs["conversation_id"]
        if conversation_id not in cache:
            cache[conversation_id] = score_conversation(spec, by_id[conversation_id], texts, tools)
        return cache[conversation_id]

    def make(name: str):
        def score(inputs: dict) -> Feedback:
            value = scores(inputs)[name]
            if value is None:  # the rule does not apply to this conversation
                return Feedback(value=None, rationale=f"not applicable: {DESCRIPTIONS[name]}")
            return Feedback(value=float(value), rationale=DESCRIPTIONS[name])

        return scorer(score, name=name, description=DESCRIPTIONS[name])

    return [make(name) for name in SCORES]


def sample(conversations: list[dict], limit: int) -> dict[str, list[dict]]:
    """Up to `limit` conversations, spread evenly over versions, lowest conversation ids first."""
    by_version: dict[str, list[dict]] = {}
    for conv in sorted(conversations, key=lambda c: str(c["conversation_id"])):
        by_version.setdefault(version_of(conv), []).append(conv)
    if not by_version or limit <= 0:
        return {}
    each = max(1, limit // len(by_version))
    return {version: convs[:each] for version, convs in sorted(by_version.items())}


def evaluate_window(spec: AssistantSpec, window: str) -> dict[str, Any]:
    """`mlflow.genai.evaluate` with Continuum's scorers, one run per prompt version of the window."""
    from datetime import datetime

    import mlflow

    from continuum.llm import tool_schemas
    from continuum.llm.evaluation import load_reference, load_window
    from continuum.tracking import ensure_experiment, keyed_run_id

    limit = spec.evaluation.genai_max_conversations
    if limit <= 0:
        return {"assistant": spec.name, "window": window, "evaluated": {}, "reason": "genai_max_conversations is 0"}
    counts = storage.get_json(storage.LlmKeys(spec.name).scores_summary(window))
    conversations, _, _ = load_window(spec, datetime.fromisoformat(counts["window_end"]))
    _, references = load_reference(spec)
    experiment = f"{spec.name}-genai-evaluation"
    evaluated: dict[str, int] = {}
    serving = tool_schemas.registered(spec)
    for version, convs in sample(conversations, limit).items():
        run_id = keyed_run_id(
            experiment,
            "genai-evaluation",
            "window_version",
            f"{window}/v{version}",
            f"genai-{window}-v{version}",
            {"assistant": spec.name, "window": window, "prompt_version": version},
        )
        client = mlflow.MlflowClient()
        if client.get_run(run_id).data.tags.get("continuum.genai_done") == "true":
            continue
        mlflow.set_experiment(experiment_id=ensure_experiment(experiment))
        with mlflow.start_run(run_id=run_id):
            tools = serving.get(version, tool_schemas.fallback(spec)).tools
            mlflow.genai.evaluate(data=[row(c) for c in convs], scorers=scorers_for(spec, references, convs, tools))
        client.set_tag(run_id, "continuum.genai_done", "true")
        evaluated[version] = len(convs)
    log.info("event=llm_genai_evaluated assistant=%s window=%s versions=%s", spec.name, window, evaluated)
    return {"assistant": spec.name, "window": window, "evaluated": evaluated}
