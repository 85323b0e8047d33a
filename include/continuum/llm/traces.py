"""MLflow traces as a conversation source, and Continuum's scores written back onto them.

An assistant spec with `conversations: {kind: mlflow_traces, experiment: ..., filter: ...}`
is read, for each evaluation window, with `mlflow.search_traces` (traces started in
`[start, end)`, ANDed with the spec's filter). One trace is one conversation:

- `messages`: the root span's inputs `messages` (OpenAI chat format), followed by its
  output: an assistant message, an OpenAI chat completion (`choices[0].message`) or a
  `{"messages": [...]}` holding the whole conversation; a plain string is the answer.
- `prompt`: the version of the assistant's prompt the trace used, from the link
  `mlflow.genai.load_prompt` records on a trace (tag `mlflow.linkedPrompts`).
- `model`, `params` (temperature, top_p): from the root span's inputs, else the first
  chat-model span's inputs (what `mlflow.openai.autolog` records), else the trace's tags.
- `usage`: the trace's token usage; `latency_ms`: its duration; `started_at`: its start.
- `conversation_id`: the trace's `conversation_id` tag or metadata, else the trace id.
- `outcome` and `feedback.rating`: the trace's assessments named `outcome` (bool) and
  `rating` (1-5), as people or the application logged them.

The record then goes through the same validation (`logs.validate_record`) and redaction
(`redact.redact_conversation`) as a JSONL line; a trace that fails is quarantined with its
reason under `quarantine/llm/<assistant>/traces-<window>` and counted. The result is stored
like a processed file (`llm/redacted/<assistant>/traces-<window>.jsonl` and its manifest,
written last), so scoring, dedup and the window read it unchanged. A rerun of a window
finds the manifest and reads nothing again; a trace already stored by an earlier window is
not stored twice.

The traces themselves stay in MLflow as logged (unredacted): who may read the experiment
is MLflow's access control, not Continuum's.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from continuum import storage
from continuum.llm.scorers import SCORES

if TYPE_CHECKING:
    from continuum.llm.specs import AssistantSpec

log = logging.getLogger(__name__)

KIND = "mlflow_traces"
SOURCE_ID = "continuum"  # the assessment source of the scores Continuum writes back
ASSESSMENT_PREFIX = "continuum."
_CHAT_SPAN_TYPES = ("CHAT_MODEL", "LLM")


class UnusableTrace(ValueError):
    """A trace that is not a conversation of this assistant; the message is the reason."""


def batch_id(window: str) -> str:
    """The stored batch of a window's traces: `traces-<window>` (a file's batch is its sha)."""
    return f"traces-{window}"


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _root(trace: Any) -> Any | None:
    return next((s for s in trace.data.spans if s.parent_id is None), None)


def _answer(outputs: Any) -> list[dict]:
    """The assistant messages a root span's output holds."""
    outputs = _json(outputs)
    if outputs is None:
        return []
    if isinstance(outputs, str):
        return [{"role": "assistant", "content": outputs}]
    if isinstance(outputs, dict):
        if isinstance(outputs.get("choices"), list) and outputs["choices"]:
            message = (outputs["choices"][0] or {}).get("message")
            return [message] if isinstance(message, dict) else []
        if outputs.get("role") == "assistant":
            return [outputs]
    raise UnusableTrace(
        f"the root span's output is not an assistant message or chat completion: {str(outputs)[:80]}"
    )


def _messages(inputs: Any, outputs: Any) -> list[dict]:
    inputs, outputs = _json(inputs), _json(outputs)
    if isinstance(outputs, dict) and isinstance(outputs.get("messages"), list):
        return outputs["messages"]  # the application returned the whole conversation
    if not isinstance(inputs, dict) or not isinstance(inputs.get("messages"), list):
        raise UnusableTrace("the root span has no input 'messages' (OpenAI chat format)")
    return [*inputs["messages"], *_answer(outputs)]


def _prompt(trace: Any, assistant: str) -> dict:
    links = _json(trace.info.tags.get("mlflow.linkedPrompts")) or []
    versions = [p for p in links if isinstance(p, dict) and p.get("name") == assistant]
    if not versions:
        raise UnusableTrace(
            f"no version of prompt '{assistant}' linked to the trace; load it with "
            f"mlflow.genai.load_prompt inside the traced call"
        )
    return {"name": assistant, "version": str(versions[-1].get("version"))}


def _settings(trace: Any, root: Any) -> tuple[Any, dict]:
    """The model and sampling parameters: root inputs, then chat-model spans, then tags."""
    sources = [_json(root.inputs)] + [
        _json(s.inputs) for s in trace.data.spans if str(s.span_type) in _CHAT_SPAN_TYPES
    ]
    sources = [s for s in sources if isinstance(s, dict)] + [trace.info.tags]

    def first(name: str) -> Any:
        for source in sources:
            value = source.get(name)
            if value is not None:
                return _json(value) if source is trace.info.tags else value
        return None

    return first("model"), {"temperature": first("temperature"), "top_p": first("top_p")}


def _assessed(trace: Any, name: str) -> Any:
    """The latest value of a non-Continuum feedback named `name` on the trace, if any."""
    values = [
        a
        for a in trace.info.assessments or []
        if a.name == name and getattr(a, "feedback", None) is not None and a.source.source_id != SOURCE_ID
    ]
    if not values:
        return None
    return max(values, key=lambda a: a.create_time_ms or 0).feedback.value


def to_record(trace: Any, assistant: str) -> dict:
    """A trace as a conversation record (not yet validated), or UnusableTrace with the reason."""
    root = _root(trace)
    if root is None:
        raise UnusableTrace("the trace has no root span")
    model, params = _settings(trace, root)
    if params["temperature"] is None or params["top_p"] is None:
        missing = [k for k, v in params.items() if v is None]
        raise UnusableTrace(f"no {' or '.join(missing)} in the root or chat-model span inputs or the tags")
    usage = trace.info.token_usage or {}
    if not usage:
        raise UnusableTrace("the trace records no token usage")
    info = trace.info
    record: dict[str, Any] = {
        "conversation_id": str(
            info.tags.get("conversation_id") or info.trace_metadata.get("conversation_id") or info.trace_id
        ),
        "assistant": assistant,
        "prompt": _prompt(trace, assistant),
        "model": model,
        "params": params,
        "started_at": datetime.fromtimestamp(info.request_time / 1000, UTC).isoformat(),
        "messages": _messages(root.inputs, root.outputs),
        "usage": {"input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens")},
        "latency_ms": info.execution_duration,
        "trace_id": info.trace_id,
    }
    outcome, rating = _assessed(trace, "outcome"), _assessed(trace, "rating")
    if outcome is not None:
        record["outcome"] = {"success": outcome}
    if rating is not None:
        record["feedback"] = {"rating": rating}
    return record


def convert(traces: list[Any], assistant: str) -> tuple[list[dict], list[dict]]:
    """Valid conversations and a quarantine record (`trace_id`, `reason`, `raw`) per unusable trace."""
    from continuum.llm.logs import RAW_LIMIT, InvalidRecord, validate_record

    valid, bad = [], []
    for trace in traces:
        try:
            valid.append(validate_record(to_record(trace, assistant), assistant))
        except (UnusableTrace, InvalidRecord) as exc:
            raw = json.dumps({"request": trace.data.request, "response": trace.data.response}, default=str)
            bad.append(
                {
                    "trace_id": trace.info.trace_id,
                    "reason": " ".join(str(exc).split()),
                    "raw": raw[:RAW_LIMIT],
                }
            )
    return valid, bad


def experiment_id(spec: AssistantSpec) -> str:
    """The spec's trace experiment; a name that does not exist is a spec error, not 'no traces'."""
    import mlflow

    name = spec.conversations.experiment
    experiment = mlflow.MlflowClient().get_experiment_by_name(name)
    if experiment is None:
        raise ValueError(
            f"assistant '{spec.name}': conversations.experiment '{name}' does not exist in MLflow "
            f"({mlflow.get_tracking_uri()}); fix the spec or log a trace to it first"
        )
    return experiment.experiment_id


def search(spec: AssistantSpec, start: datetime, end: datetime) -> list[Any]:
    """The spec's traces started in [start, end), with their spans."""
    import mlflow

    window = f"trace.timestamp_ms >= {int(start.timestamp() * 1000)} AND trace.timestamp_ms < {int(end.timestamp() * 1000)}"
    extra = spec.conversations.filter
    return mlflow.search_traces(
        locations=[experiment_id(spec)],
        filter_string=f"{window} AND {extra}" if extra else window,
        return_type="list",
        order_by=["timestamp_ms ASC"],
    )


def _stored_trace_ids(spec: AssistantSpec, start: datetime, end: datetime) -> set[str]:
    """Trace ids already stored by earlier windows' trace batches that overlap this one."""
    from continuum.llm.evaluation import _in_window

    keys = storage.LlmKeys(spec.name)
    ids: set[str] = set()
    for key in storage.list_keys(keys.redacted_prefix):
        if not key.endswith(".json"):
            continue
        manifest = storage.get_json(key)
        if manifest.get("kind") == KIND and _in_window(manifest, start, end):
            ids.update(manifest.get("trace_ids", []))
    return ids


def read_window(spec: AssistantSpec, window_end: datetime) -> dict[str, Any]:
    """Read, validate, redact and store the window's traces; idempotent for the window."""
    from continuum.llm.evaluation import _jsonl, store_quarantined, window_bounds, window_id
    from continuum.llm.redact import redact_conversation

    keys = storage.LlmKeys(spec.name)
    start, end = window_bounds(spec, window_end)
    window = window_id(start, end)
    if spec.conversations is None:
        return {"assistant": spec.name, "window": window, "skipped": True, "valid": 0, "quarantined": 0}
    batch = batch_id(window)
    if storage.exists(keys.manifest(batch)):
        manifest = storage.get_json(keys.manifest(batch))
        log.info("event=llm_traces_skipped assistant=%s window=%s reason=already_read", spec.name, window)
        return {"assistant": spec.name, "window": window, "skipped": True, **_counts(manifest)}
    stored = _stored_trace_ids(spec, start, end)
    traces = [t for t in search(spec, start, end) if t.info.trace_id not in stored]
    valid, bad = convert(traces, spec.name)
    source = f"mlflow traces, experiment {spec.conversations.experiment}"
    if bad:
        store_quarantined(spec, batch, bad, len(valid), "trace_id", {"source": source, "window": window})
    redacted = [redact_conversation(c) for c in valid]
    storage.put_bytes(keys.redacted(batch), _jsonl(redacted), "application/x-ndjson")
    started = sorted(str(c["started_at"]) for c in redacted)
    manifest = {
        "kind": KIND,
        "source": source,
        "window": window,
        "raw": None,
        "valid": len(redacted),
        "quarantined": len(bad),
        "trace_ids": [t.info.trace_id for t in traces],
        # A batch of only quarantined traces still belongs to its window (a file's goes by processed_at).
        "first_started_at": started[0] if started else start.isoformat(),
        "last_started_at": started[-1] if started else start.isoformat(),
        "processed_at": datetime.now(UTC).isoformat(),
    }
    storage.put_json(keys.manifest(batch), manifest)  # last: its presence means "read"
    log.info(
        "event=llm_traces_read assistant=%s window=%s traces=%d valid=%d quarantined=%d already_stored=%d",
        spec.name,
        window,
        len(traces),
        len(redacted),
        len(bad),
        len(stored),
    )
    return {"assistant": spec.name, "window": window, "skipped": False, **_counts(manifest)}


def _counts(manifest: dict) -> dict[str, int]:
    return {"valid": int(manifest["valid"]), "quarantined": int(manifest["quarantined"])}


# `outcome` and `rating` are people's feedback already on the trace: writing them back would repeat them.
WRITTEN_BACK = tuple(n for n in SCORES if n not in ("outcome", "rating"))


def write_assessments(spec: AssistantSpec, window: str) -> dict[str, Any]:
    """Each trace-sourced conversation's scores as feedback on its trace (`mlflow.log_feedback`).

    Source CODE `continuum`, the score's name, a rationale and the window in the metadata.
    A trace that already carries Continuum's feedback of a name is not given it again, so a
    rerun (or a later, overlapping window) adds nothing.
    """
    import math

    import mlflow
    from mlflow.entities import AssessmentSource

    from continuum.llm.evaluation import load_window
    from continuum.llm.scorers import DESCRIPTIONS

    if spec.conversations is None:
        return {"assistant": spec.name, "window": window, "traces": 0, "written": 0, "already": 0}
    keys = storage.LlmKeys(spec.name)
    counts = storage.get_json(keys.scores_summary(window))
    conversations, _, _ = load_window(spec, datetime.fromisoformat(counts["window_end"]))
    trace_of = {str(c["conversation_id"]): c["trace_id"] for c in conversations if c.get("trace_id")}
    table = storage.get_frame(keys.scores(window))
    source = AssessmentSource(source_type="CODE", source_id=SOURCE_ID)
    written = skipped = 0
    for row in table[table["conversation_id"].isin(list(trace_of))].to_dict("records"):
        trace_id = trace_of[row["conversation_id"]]
        trace = mlflow.get_trace(trace_id)
        if trace is None:  # deleted from MLflow since it was read
            continue
        have = {a.name for a in trace.info.assessments or [] if a.source.source_id == SOURCE_ID}
        for name in WRITTEN_BACK:
            value = row[name]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if name in have:
                skipped += 1
                continue
            mlflow.log_feedback(
                trace_id=trace_id,
                name=name,
                value=float(value),
                source=source,
                rationale=f"{DESCRIPTIONS[name]}; Continuum offline scorer, prompt version {row['version']}",
                metadata={"window": window, "prompt_version": str(row["version"])},
            )
            written += 1
    log.info(
        "event=llm_assessments_written assistant=%s window=%s traces=%d written=%d already=%d",
        spec.name,
        window,
        len(trace_of),
        written,
        skipped,
    )
    return {
        "assistant": spec.name,
        "window": window,
        "traces": len(trace_of),
        "written": written,
        "already": skipped,
    }
