"""The prompt-evaluation steps, in the order the DAG runs them; each plain and idempotent.

Data moves through S3 keys derived from the assistant and the window (built by
`storage.LlmKeys`, laid out in docs/architecture.md), so a retried step reads and
writes the same objects. A window is `[end - window_days, end)`, named
`<start>-<end>`; an evaluation is keyed by its window and its Airflow run, so no
evaluation overwrites another's decision record.

Redaction happens before anything derived from a log is stored, scored or sent
anywhere. The landed file (personal data) is deleted once redacted unless the spec
sets `evaluation.raw_retention_days`; then it waits under the RESTRICTED `llm/raw/`
until `expire_raw` (a task of the evaluation DAG) deletes it.

Promotion is for deciding runs only (`may_promote`): the scheduled evaluation and an
operator's manual run. Runs triggered by each new log file report and never move an
alias, so looking after every file does not multiply the chances of promoting a
version that is not better (tests/unit/test_llm_sequential.py measures it).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from continuum import storage

if TYPE_CHECKING:
    from continuum.llm.specs import AssistantSpec

log = logging.getLogger(__name__)

RECORD_KEYS = (
    "assistant",
    "window",
    "conversations",
    "quarantined",
    "versions",
    "production_before",
    "production_after",
    "promoted",
    "reason",
    "window_start",
    "window_end",
    "run",
    "mode",
    "duplicates",
    "similarity_reference",
    "retired",
    "judge",
)
# Per version in the record: its evidence, the Pareto front of quality per dollar, and which
# tool schemas its calls were validated against (and whether they changed since it was written).
VERSION_KEYS = ("n", "primary", "ci", "safety", "cost_per_conversation", "pareto", "tool_schemas")
PROMOTING_RUN_TYPES = ("scheduled", "manual")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def may_promote(run_type: str | None) -> bool:
    """Whether a run of this Airflow run type may move `production` (else it only reports)."""
    return str(run_type or "").lower().rsplit(".", 1)[-1] in PROMOTING_RUN_TYPES


def window_bounds(spec: AssistantSpec, window_end: datetime) -> tuple[datetime, datetime]:
    end = _utc(window_end).replace(microsecond=0)
    return end - timedelta(days=spec.evaluation.window_days), end


def window_id(start: datetime, end: datetime) -> str:
    """`<start>-<end>` in compact UTC, e.g. 20261122T000000Z-20261129T000000Z."""
    return f"{_utc(start):%Y%m%dT%H%M%SZ}-{_utc(end):%Y%m%dT%H%M%SZ}"


def window_for(spec: AssistantSpec, window_end: datetime) -> str:
    return window_id(*window_bounds(spec, window_end))


def run_key(run_id: str) -> str:
    """An Airflow run id as an S3 key segment (`scheduled__2026-11-29T00:00:00+00:00` has ':' and '+')."""
    key = _UNSAFE.sub("_", str(run_id)).strip("._")
    if not key:
        raise ValueError(f"run id {run_id!r} has no usable characters for an S3 key")
    return key


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _retire_landed(spec: AssistantSpec, key: str, sha: str) -> str | None:
    """Take the landed file out of the landing zone: kept under `llm/raw/` only when retention asks for it."""
    keys = storage.LlmKeys(spec.name)
    if spec.evaluation.raw_retention_days > 0:
        return storage.move(key, keys.raw(sha))
    storage.delete(key)
    return None


def store_quarantined(
    spec: AssistantSpec, stem: str, bad: list[dict], valid: int, locator: str, about: dict[str, Any]
) -> None:
    """Bad records (their `raw` redacted) and a report of why, each located by `locator` (line, trace_id)."""
    from continuum.llm.redact import redact_text

    keys = storage.LlmKeys(spec.name)
    masked = [{**b, "raw": redact_text(b["raw"])} for b in bad]
    storage.put_bytes(keys.quarantine(stem), _jsonl(masked), "application/x-ndjson")
    reasons = [{locator: b[locator], "reason": b["reason"]} for b in bad]
    storage.put_json(
        keys.quarantine_report(stem), {**about, "quarantined": len(bad), "valid": valid, "reasons": reasons}
    )


def _process(spec: AssistantSpec, key: str) -> dict[str, Any]:
    from continuum.llm.logs import parse_jsonl
    from continuum.llm.redact import redact_conversation

    keys = storage.LlmKeys(spec.name)
    data = storage.get_bytes(key)
    sha = storage.batch_id_for(data)
    if storage.exists(keys.manifest(sha)):
        _retire_landed(spec, key, sha)
        log.info(
            "event=llm_log_skipped assistant=%s file=%s sha=%s reason=already_processed", spec.name, key, sha
        )
        return {"file": key, "sha": sha, "skipped": True, "valid": 0, "quarantined": 0}
    valid, bad = parse_jsonl(data, spec.name)
    stem = PurePosixPath(key).stem
    if bad:
        store_quarantined(spec, stem, bad, len(valid), "line", {"source": key, "sha": sha})
    redacted = [redact_conversation(c) for c in valid]
    storage.put_bytes(keys.redacted(sha), _jsonl(redacted), "application/x-ndjson")
    started = sorted(str(c["started_at"]) for c in redacted)
    kept = spec.evaluation.raw_retention_days > 0
    manifest = {
        "source": key,
        "raw": keys.raw(sha) if kept else None,
        "valid": len(redacted),
        "quarantined": len(bad),
        "first_started_at": started[0] if started else None,
        "last_started_at": started[-1] if started else None,
        "processed_at": datetime.now(UTC).isoformat(),
    }
    storage.put_json(keys.manifest(sha), manifest)
    _retire_landed(spec, key, sha)
    log.info(
        "event=llm_log_processed assistant=%s file=%s sha=%s valid=%d quarantined=%d raw_kept=%s",
        spec.name,
        key,
        sha,
        len(redacted),
        len(bad),
        kept,
    )
    return {"file": key, "sha": sha, "skipped": False, "valid": len(redacted), "quarantined": len(bad)}


def validate_and_redact(spec: AssistantSpec) -> dict[str, Any]:
    """Every JSONL file in the landing zone: bad lines quarantined, the rest redacted and stored.

    A file whose bytes were processed before is only taken out of the landing zone.
    """
    files = [k for k in storage.list_keys(storage.LlmKeys(spec.name).landing) if k.endswith(".jsonl")]
    results = [_process(spec, key) for key in files]
    return {
        "assistant": spec.name,
        "files": len(results),
        "skipped": sum(r["skipped"] for r in results),
        "valid": sum(r["valid"] for r in results),
        "quarantined": sum(r["quarantined"] for r in results),
    }


def expire_raw(spec: AssistantSpec, now: datetime | None = None) -> dict[str, Any]:
    """Delete landed, unredacted files older than `evaluation.raw_retention_days` (all of them at 0)."""
    now = _utc(now or datetime.now(UTC))
    cutoff = now - timedelta(days=spec.evaluation.raw_retention_days)
    expired = [
        obj["Key"]
        for obj in storage.list_objects(storage.LlmKeys(spec.name).raw_prefix)
        if spec.evaluation.raw_retention_days == 0 or _utc(obj["LastModified"]) < cutoff
    ]
    for key in expired:
        storage.delete(key)
    log.info(
        "event=llm_raw_expired assistant=%s deleted=%d retention_days=%d",
        spec.name,
        len(expired),
        spec.evaluation.raw_retention_days,
    )
    return {"assistant": spec.name, "deleted": len(expired), "retention_days": spec.evaluation.raw_retention_days}


def _in_window(manifest: dict, start: datetime, end: datetime) -> bool:
    if manifest.get("first_started_at") is None:
        return start <= datetime.fromisoformat(manifest["processed_at"]) < end
    first = datetime.fromisoformat(manifest["first_started_at"])
    last = datetime.fromisoformat(manifest["last_started_at"])
    return first < end and last >= start


def load_window(spec: AssistantSpec, window_end: datetime) -> tuple[list[dict], int, int]:
    """Redacted conversations started in [end - window_days, end), the quarantined lines of the
    files they came from (a file with no valid line counts by when it was processed), and how
    many duplicates were dropped; `iter_window` as a list.
    """
    counts: dict[str, int] = {}
    conversations = list(iter_window(spec, window_end, counts))
    return conversations, counts["quarantined"], counts["duplicates"]


def iter_window(spec: AssistantSpec, window_end: datetime, counts: dict[str, int]) -> Iterator[dict]:
    """The window's redacted conversations one at a time, so scoring never holds the window whole;
    `counts` gets `quarantined` and `duplicates` (see `load_window`) once the iterator is exhausted.

    A `conversation_id` counts once in the window, whichever file (or source) logged it
    again: files are read in the order they were processed and the first copy is kept.
    """
    start, end = window_bounds(spec, window_end)
    keys = storage.LlmKeys(spec.name)
    manifests = []
    for key in storage.list_keys(keys.redacted_prefix):
        if key.endswith(".json"):
            manifest = storage.get_json(key)
            if _in_window(manifest, start, end):
                manifests.append((manifest["processed_at"], key, manifest))
    seen: set[str] = set()
    quarantined = duplicates = 0
    for _, key, manifest in sorted(manifests, key=lambda m: (m[0], m[1])):
        quarantined += int(manifest.get("quarantined", 0))
        data = storage.get_bytes(key.removesuffix(".json") + ".jsonl")
        for line in io.StringIO(data.decode()):
            if not line.strip():
                continue
            conv = json.loads(line)
            if not start <= _utc(datetime.fromisoformat(conv["started_at"])) < end:
                continue
            conversation_id = str(conv["conversation_id"])
            if conversation_id in seen:
                duplicates += 1
                continue
            seen.add(conversation_id)
            yield conv
    if duplicates:
        log.info("event=llm_duplicates_dropped assistant=%s duplicates=%d", spec.name, duplicates)
    counts.update(quarantined=quarantined, duplicates=duplicates)


def load_reference(spec: AssistantSpec) -> tuple[str | None, list[dict]]:
    """The fixed set of good conversations `similarity` compares against, and its version.

    Read from `llm/references/<assistant>/<version>.jsonl`; when that object is absent and
    the spec ships `references/<assistant>/<version>.jsonl` next to its YAML, that file is
    uploaded first (only ever created, never replaced: a new set is a new version). Never the
    window's own conversations: a reference drawn from production would favour production.
    """
    version = spec.evaluation.similarity_reference
    key = storage.LlmKeys(spec.name).reference(version)
    if not storage.exists(key):
        shipped = spec.source.parent / "references" / spec.name / f"{version}.jsonl" if spec.source else None
        if shipped is None or not shipped.is_file():
            log.info("event=llm_reference_missing assistant=%s version=%s key=%s", spec.name, version, key)
            return None, []
        storage.put_bytes(key, shipped.read_bytes(), "application/x-ndjson")
    lines = storage.get_bytes(key).decode().splitlines()
    return version, [json.loads(line) for line in lines if line.strip()]


def score(spec: AssistantSpec, window_end: datetime) -> dict[str, Any]:
    """Score the window's conversations; writes the per-conversation table and its counts.

    Tool calls are validated against the schemas of the version that served them
    (`tool_schemas`); the counts say per version which schemas were used. The prompt is
    seeded first, so shipped versions carry their tools' hash before the first window.
    """
    from continuum.llm import prompts, tool_schemas
    from continuum.llm.scorers import score_table

    keys = storage.LlmKeys(spec.name)
    start, end = window_bounds(spec, window_end)
    window = window_id(start, end)
    reference, references = load_reference(spec)
    prompts.seed(spec)
    serving = tool_schemas.registered(spec)
    read: dict[str, int] = {}
    tools = {version: s.tools for version, s in serving.items()}
    table = score_table(spec, iter_window(spec, end, read), references=references, tools_by_version=tools)
    quarantined, duplicates = read["quarantined"], read["duplicates"]
    storage.put_frame(keys.scores(window), table)
    counts = {
        "assistant": spec.name,
        "window": window,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "conversations": len(table),
        "quarantined": quarantined,
        "duplicates": duplicates,
        "similarity_reference": reference,
        "per_version": {str(k): int(v) for k, v in table["version"].value_counts().sort_index().items()},
        "tool_schemas": {
            str(v): serving.get(str(v), tool_schemas.fallback(spec)).describe() for v in table["version"].unique()
        },
        "scores": keys.scores(window),
    }
    storage.put_json(keys.scores_summary(window), counts)
    log.info("event=llm_scored assistant=%s window=%s conversations=%d", spec.name, window, len(table))
    return counts


def compare_and_decide(spec: AssistantSpec, window: str) -> dict[str, Any]:
    """Summaries with CIs per version and the promotion decision against the current aliases.

    Seeds the prompt first (a no-op when it exists) so a fresh platform has a registry
    to compare against.
    """
    from continuum.llm import prompts
    from continuum.llm.compare import decide, summarise

    keys = storage.LlmKeys(spec.name)
    prompts.seed(spec)
    counts = storage.get_json(keys.scores_summary(window))
    table = storage.get_frame(keys.scores(window))
    summary = summarise(spec, table)
    for version, entry in summary.items():  # which tool schemas `tool_calls_valid` used (see `score`)
        entry["tool_schemas"] = (counts.get("tool_schemas") or {}).get(version)
    production = prompts.production(spec.name)
    candidates = prompts.candidates(spec.name)
    judged = storage.get_json_tagged(keys.judge_window(window))  # None: no judge ran for this window
    judge = judged[0] if judged else None
    decision = decide(spec, summary, production, candidates, judge)
    log.info(
        "event=llm_decided assistant=%s window=%s production=%s promote=%s",
        spec.name,
        window,
        production,
        decision["promote"],
    )
    return {
        "assistant": spec.name,
        "window": window,
        "counts": {k: counts.get(k) for k in ("window_start", "window_end", "duplicates", "similarity_reference")},
        "conversations": counts["conversations"],
        "quarantined": counts["quarantined"],
        "summary": summary,
        "production_before": production,
        "candidates": candidates,
        "decision": decision,
        "judge": _judge_report(judge),
    }


def _judge_report(judge: dict | None) -> dict | None:
    """What the report shows of the judge: agreement, confusion, disagreements; not every grade."""
    return None if judge is None else {k: v for k, v in judge.items() if k != "rows"}


def _metrics(summary: dict) -> dict[str, float]:
    metrics = {}
    for version, entry in summary.items():
        metrics[f"v{version}.n"] = float(entry["n"])
        for name, score in entry["scores"].items():
            if score["mean"] is not None:
                metrics[f"v{version}.{name}"] = float(score["mean"])
            if score["ci"] and score["ci"][0] is not None:
                metrics[f"v{version}.{name}.ci_low"] = float(score["ci"][0])
                metrics[f"v{version}.{name}.ci_high"] = float(score["ci"][1])
    return metrics


def evaluation_run(spec: AssistantSpec, window: str) -> str:
    """The window's MLflow run (`prompt-eval-<window>`): one per assistant and window."""
    from continuum.tracking import keyed_run_id

    return keyed_run_id(
        f"{spec.name}-prompt-evaluation",
        "prompt-evaluation",
        "window",
        window,
        f"prompt-eval-{window}",
        {"assistant": spec.name},
    )


def _apply(spec: AssistantSpec, window: str, decision: dict[str, Any], deciding: bool) -> tuple[str | None, str, dict]:
    """Move `production` and retire losing candidates when this run decides; else say what it would do."""
    from continuum.llm import prompts

    verdict = decision["decision"]
    before = decision["production_before"]
    if not deciding:
        reason = (
            "report only: this run was triggered by new logs, and only the scheduled evaluation moves "
            f"production; {verdict['reason']}"
        )
        return before, reason, {}
    after = before
    if verdict["promote"] is not None:
        after = prompts.promote(spec.name, verdict["promote"])["production"]
    losers = [v for v in verdict.get("lost", []) if v != after]
    others = [v for v in decision["candidates"] if v not in losers and v in verdict.get("compared", [])]
    retired = prompts.record_results(spec.name, window, losers, others, spec.evaluation.retire_after_losses)
    reason = verdict["reason"]
    if retired:
        reason += "; retired " + "; ".join(f"version {v}: {why}" for v, why in retired.items())
    return after, reason, retired


def record(
    spec: AssistantSpec, window: str, decision: dict[str, Any], *, run: str, deciding: bool = True
) -> dict[str, Any]:
    """Log the evaluation run, move `production` when decided, store the decision record.

    `decision` is what `compare_and_decide` returned; `run` the Airflow run id. The record
    of a window and run is written once: a retried task returns the stored record.
    `deciding` is False for report-only runs (see `may_promote`).
    """
    import mlflow

    from continuum.llm.report import render

    keys = storage.LlmKeys(spec.name)
    run = run_key(run)
    if storage.exists(keys.decision(window, run)):
        log.info("event=llm_record_exists assistant=%s window=%s run=%s", spec.name, window, run)
        return storage.get_json(keys.decision(window, run))
    summary = decision["summary"]
    verdict = decision["decision"]
    before = decision["production_before"]
    after, reason, retired = _apply(spec, window, decision, deciding)
    counts = decision.get("counts", {})
    result = {
        "assistant": spec.name,
        "window": window,
        "conversations": decision["conversations"],
        "quarantined": decision["quarantined"],
        "versions": {
            v: {k: e.get(k) for k in VERSION_KEYS}
            for v, e in summary.items()
        },
        "production_before": before,
        "production_after": after,
        "promoted": after != before,
        "reason": reason,
        "window_start": counts.get("window_start"),
        "window_end": counts.get("window_end"),
        "run": run,
        "mode": "decide" if deciding else "report",
        "duplicates": counts.get("duplicates", 0),
        "similarity_reference": counts.get("similarity_reference"),
        "retired": retired,
        "judge": verdict.get("judge"),
    }
    html = render(spec.name, window, summary, result, verdict, spec, judge=decision.get("judge"))
    client = mlflow.MlflowClient()
    run_id = evaluation_run(spec, window)
    for key, value in _metrics(summary).items():
        client.log_metric(run_id, key, value)
    table = storage.get_frame(keys.scores(window))
    client.log_table(run_id, data=table, artifact_file="scores.json")
    client.log_text(run_id, html, f"report-{run}.html")
    client.log_dict(run_id, {**result, "blocked": verdict["blocked"]}, f"decision-{run}.json")
    client.set_tag(run_id, "promoted", str(result["promoted"]).lower())
    storage.put_bytes(keys.report(window, run), html.encode(), "text/html")
    storage.put_json(keys.decision(window, run), result)  # last: its presence means "recorded"
    log.info(
        "event=llm_recorded assistant=%s window=%s run=%s mode=%s production_before=%s production_after=%s run_id=%s",
        spec.name,
        window,
        run,
        result["mode"],
        before,
        after,
        run_id,
    )
    return result


def latest_decision(assistant: str) -> dict[str, Any] | None:
    """The decision record written last, or None before the first evaluation."""
    decisions = [
        o for o in storage.list_objects(storage.LlmKeys(assistant).decisions_prefix) if o["Key"].endswith(".json")
    ]
    if not decisions:
        return None
    return storage.get_json(max(decisions, key=lambda o: (o["LastModified"], o["Key"]))["Key"])
