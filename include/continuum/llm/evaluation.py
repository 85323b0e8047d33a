"""The prompt-evaluation steps, in the order the DAG runs them; each plain and idempotent.

Data moves through S3 keys derived from the assistant and the window, so a retried
step reads and writes the same objects:

    llm/conversations/<a>/<file>.jsonl       landing zone (the user's file, personal data)
    llm/raw/<a>/<sha16>.jsonl                the landed file after processing: RESTRICTED,
                                             the only place with personal data; nothing is lost
    quarantine/llm/<a>/<stem>.jsonl          bad lines (personal data masked) + .report.json
    llm/redacted/<a>/<sha16>.jsonl           redacted conversations, keyed by the file's content
    llm/redacted/<a>/<sha16>.json            what that file held (written last: "done")
    llm/scores/<a>/<window>.parquet          one row per conversation (+ .json with the counts)
    llm/decisions/<a>/<window>.json          the decision record (+ .html, the report)

Redaction happens before anything derived from a log is stored, scored or sent
anywhere; grant read access to `llm/raw/` only to whoever may see personal data
(and expire it with a bucket lifecycle rule if policy says so).
"""

from __future__ import annotations

import json
import logging
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
)


def landing_prefix(assistant: str) -> str:
    return f"llm/conversations/{assistant}/"


def raw_key(assistant: str, sha: str) -> str:
    return f"llm/raw/{assistant}/{sha}.jsonl"


def quarantine_key(assistant: str, source_key: str) -> str:
    return f"quarantine/llm/{assistant}/{PurePosixPath(source_key).stem}.jsonl"


def quarantine_report_key(assistant: str, source_key: str) -> str:
    return f"quarantine/llm/{assistant}/{PurePosixPath(source_key).stem}.report.json"


def redacted_key(assistant: str, sha: str) -> str:
    return f"llm/redacted/{assistant}/{sha}.jsonl"


def manifest_key(assistant: str, sha: str) -> str:
    return f"llm/redacted/{assistant}/{sha}.json"


def scores_key(assistant: str, window: str) -> str:
    return f"llm/scores/{assistant}/{window}.parquet"


def scores_summary_key(assistant: str, window: str) -> str:
    return f"llm/scores/{assistant}/{window}.json"


def decision_key(assistant: str, window: str) -> str:
    return f"llm/decisions/{assistant}/{window}.json"


def report_key(assistant: str, window: str) -> str:
    return f"llm/decisions/{assistant}/{window}.html"


def window_name(window_end: datetime) -> str:
    """A window is named by the day it ends on: one evaluation per assistant and day."""
    return f"{window_end:%Y-%m-%d}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _process(spec: AssistantSpec, key: str) -> dict[str, Any]:
    from continuum.llm.logs import parse_jsonl
    from continuum.llm.redact import redact_conversation, redact_text

    data = storage.get_bytes(key)
    sha = storage.batch_id_for(data)
    if storage.exists(manifest_key(spec.name, sha)):
        storage.move(key, raw_key(spec.name, sha))
        log.info(
            "event=llm_log_skipped assistant=%s file=%s sha=%s reason=already_processed", spec.name, key, sha
        )
        return {"file": key, "sha": sha, "skipped": True, "valid": 0, "quarantined": 0}
    valid, bad = parse_jsonl(data, spec.name)
    if bad:
        masked = [{**b, "raw": redact_text(b["raw"])} for b in bad]
        storage.put_bytes(quarantine_key(spec.name, key), _jsonl(masked), "application/x-ndjson")
        storage.put_json(
            quarantine_report_key(spec.name, key),
            {
                "source": key,
                "sha": sha,
                "quarantined": len(bad),
                "valid": len(valid),
                "reasons": [{"line": b["line"], "reason": b["reason"]} for b in bad],
            },
        )
    redacted = [redact_conversation(c) for c in valid]
    storage.put_bytes(redacted_key(spec.name, sha), _jsonl(redacted), "application/x-ndjson")
    started = sorted(str(c["started_at"]) for c in redacted)
    manifest = {
        "source": key,
        "raw": raw_key(spec.name, sha),
        "valid": len(redacted),
        "quarantined": len(bad),
        "first_started_at": started[0] if started else None,
        "last_started_at": started[-1] if started else None,
        "processed_at": datetime.now(UTC).isoformat(),
    }
    storage.put_json(manifest_key(spec.name, sha), manifest)
    storage.move(key, raw_key(spec.name, sha))
    log.info(
        "event=llm_log_processed assistant=%s file=%s sha=%s valid=%d quarantined=%d",
        spec.name,
        key,
        sha,
        len(redacted),
        len(bad),
    )
    return {"file": key, "sha": sha, "skipped": False, "valid": len(redacted), "quarantined": len(bad)}


def validate_and_redact(spec: AssistantSpec) -> dict[str, Any]:
    """Every JSONL file in the landing zone: bad lines quarantined, the rest redacted and stored.

    A file whose bytes were processed before is only moved out of the landing zone.
    """
    files = [k for k in storage.list_keys(landing_prefix(spec.name)) if k.endswith(".jsonl")]
    results = [_process(spec, key) for key in files]
    return {
        "assistant": spec.name,
        "files": len(results),
        "skipped": sum(r["skipped"] for r in results),
        "valid": sum(r["valid"] for r in results),
        "quarantined": sum(r["quarantined"] for r in results),
    }


def _in_window(manifest: dict, start: datetime, end: datetime) -> bool:
    if manifest.get("first_started_at") is None:
        return start <= datetime.fromisoformat(manifest["processed_at"]) < end
    first = datetime.fromisoformat(manifest["first_started_at"])
    last = datetime.fromisoformat(manifest["last_started_at"])
    return first < end and last >= start


def load_window(spec: AssistantSpec, window_end: datetime) -> tuple[list[dict], int]:
    """Redacted conversations started in [end - window_days, end), and the quarantined lines
    of the files they came from (a file with no valid line counts by when it was processed)."""
    end = _utc(window_end)
    start = end - timedelta(days=spec.evaluation.window_days)
    conversations: list[dict] = []
    quarantined = 0
    prefix = f"llm/redacted/{spec.name}/"
    for key in storage.list_keys(prefix):
        if not key.endswith(".json"):
            continue
        manifest = storage.get_json(key)
        if not _in_window(manifest, start, end):
            continue
        quarantined += int(manifest.get("quarantined", 0))
        data = storage.get_bytes(key.removesuffix(".json") + ".jsonl")
        for line in data.decode().splitlines():
            if line.strip():
                conv = json.loads(line)
                if start <= _utc(datetime.fromisoformat(conv["started_at"])) < end:
                    conversations.append(conv)
    return conversations, quarantined


def score(spec: AssistantSpec, window_end: datetime) -> dict[str, Any]:
    """Score the window's conversations; writes the per-conversation table and its counts."""
    from continuum.llm import prompts
    from continuum.llm.scorers import score_table

    window = window_name(window_end)
    prompts.seed(spec)  # a no-op when the prompt exists; the references depend on production
    conversations, quarantined = load_window(spec, window_end)
    table = score_table(spec, conversations, production=prompts.production(spec.name))
    storage.put_frame(scores_key(spec.name, window), table)
    counts = {
        "assistant": spec.name,
        "window": window,
        "conversations": len(table),
        "quarantined": quarantined,
        "per_version": {str(k): int(v) for k, v in table["version"].value_counts().sort_index().items()},
        "scores": scores_key(spec.name, window),
    }
    storage.put_json(scores_summary_key(spec.name, window), counts)
    log.info("event=llm_scored assistant=%s window=%s conversations=%d", spec.name, window, len(table))
    return counts


def compare_and_decide(spec: AssistantSpec, window: str) -> dict[str, Any]:
    """Summaries with CIs per version and the promotion decision against the current aliases.

    Seeds the prompt first (a no-op when it exists) so a fresh platform has a registry
    to compare against.
    """
    from continuum.llm import prompts
    from continuum.llm.compare import decide, summarise

    prompts.seed(spec)
    counts = storage.get_json(scores_summary_key(spec.name, window))
    table = storage.get_frame(scores_key(spec.name, window))
    summary = summarise(spec, table)
    production = prompts.production(spec.name)
    candidates = prompts.candidates(spec.name)
    decision = decide(spec, summary, production, candidates)
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
        "conversations": counts["conversations"],
        "quarantined": counts["quarantined"],
        "summary": summary,
        "production_before": production,
        "candidates": candidates,
        "decision": decision,
    }


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
    """The window's MLflow run (`prompt-eval-<window>`), one per assistant and day."""
    from continuum.tracking import keyed_run_id

    return keyed_run_id(
        f"{spec.name}-prompt-evaluation",
        "prompt-evaluation",
        "window",
        window,
        f"prompt-eval-{window}",
        {"assistant": spec.name},
    )


def record(spec: AssistantSpec, window: str, decision: dict[str, Any]) -> dict[str, Any]:
    """Log the evaluation run, move `production` when decided, store the decision record.

    `decision` is what `compare_and_decide` returned.
    """
    import mlflow

    from continuum.llm import prompts
    from continuum.llm.report import render

    summary = decision["summary"]
    verdict = decision["decision"]
    before = decision["production_before"]
    after = before
    if verdict["promote"] is not None:
        after = prompts.promote(spec.name, verdict["promote"])["production"]
    result = {
        "assistant": spec.name,
        "window": window,
        "conversations": decision["conversations"],
        "quarantined": decision["quarantined"],
        "versions": {
            v: {k: e[k] for k in ("n", "primary", "ci", "safety", "cost_per_conversation")}
            for v, e in summary.items()
        },
        "production_before": before,
        "production_after": after,
        "promoted": after != before,
        "reason": verdict["reason"],
    }
    html = render(spec.name, window, summary, result, verdict, spec)
    client = mlflow.MlflowClient()
    run_id = evaluation_run(spec, window)
    for key, value in _metrics(summary).items():
        client.log_metric(run_id, key, value)
    table = storage.get_frame(scores_key(spec.name, window))
    client.log_table(run_id, data=table, artifact_file="scores.json")
    client.log_text(run_id, html, "report.html")
    client.log_dict(run_id, {**result, "blocked": verdict["blocked"]}, "decision.json")
    client.set_tag(run_id, "promoted", str(result["promoted"]).lower())
    storage.put_bytes(report_key(spec.name, window), html.encode(), "text/html")
    storage.put_json(decision_key(spec.name, window), result)
    log.info(
        "event=llm_recorded assistant=%s window=%s production_before=%s production_after=%s run_id=%s",
        spec.name,
        window,
        before,
        after,
        run_id,
    )
    return result
