"""`continuum demo`: the whole story on the shipped domains and assistants, headless.

For each domain with a simulator: a first batch trains (and for retail beats the
rules baseline), a stable batch changes nothing, a drifted batch triggers
retraining and promotion, and a broken batch is quarantined. For the assistants:
a better and safe prompt is promoted, a higher-converting unsafe one is blocked
by a guardrail, too little traffic is "insufficient evidence". Everything goes
through the real DAGs (`continuum ingest --run`, `continuum llm ingest --run`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

STORY = (
    ("first batch", {"seed": 101}),
    ("stable batch", {"seed": 102}),
    ("drifted batch", {"seed": 103, "faults": ["covariate_drift"], "drift": 1.0}),
    ("broken batch", {"seed": 104, "faults": ["out_of_range", "unseen_category", "nulls"]}),
)


def run_story(domains: list[str], ingest) -> list[dict]:
    """Ingest the story's batches for each domain; returns one row per batch for the table."""
    from continuum import simulate
    from continuum.simulate.feed import batch_rows

    rows = []
    with tempfile.TemporaryDirectory(prefix="continuum-demo-") as tmp:
        for domain in domains:
            for step, (label, kwargs) in enumerate(STORY):
                frame = simulate.generate(domain, n=batch_rows(domain), **kwargs)
                path = simulate.write(frame, Path(tmp) / f"{domain}-{step}.csv")
                rows.append(summarise(label, ingest(domain, path)))
    return rows


# The LLM story: (label, assistant, traffic share per prompt version, conversations). One day's
# window accumulates, so each evaluation also sees the conversations of the steps before it.
LLM_STORY = (
    ("higher conversion, unsafe", "shopping_assistant", {"1": 0.5, "3": 0.5}, 900),
    ("better, safe candidate", "shopping_assistant", {"1": 0.5, "4": 0.5}, 900),
    ("too little traffic", "claims_assistant", {"1": 0.5, "2": 0.5}, 60),
    ("better, safe candidate", "claims_assistant", {"1": 0.5, "2": 0.5}, 900),
)


def run_llm_story(ingest) -> list[dict]:
    """Land simulated conversation logs and evaluate them; one row per evaluation."""
    from datetime import UTC, datetime, timedelta

    from continuum import storage
    from continuum.llm import simulate

    rows = []
    start = datetime.now(UTC) - timedelta(days=1, hours=1)  # the simulator spreads a log over one day
    with tempfile.TemporaryDirectory(prefix="continuum-demo-llm-") as tmp:
        for step, (label, assistant, versions, n) in enumerate(LLM_STORY):
            conversations = simulate.generate(assistant, n=n, seed=200 + step, versions=versions, start=start, malformed=2)
            path = Path(tmp) / f"{assistant}-{step}.jsonl"
            path.write_bytes(simulate.to_jsonl(conversations))
            record = ingest(assistant, path)
            rows.append(
                {
                    "assistant": assistant,
                    "step": label,
                    "conversations": record["conversations"],
                    "quarantined": record["quarantined"],
                    "production": f"v{record['production_before']} -> v{record['production_after']}",
                    "promoted": "yes" if record["promoted"] else "no",
                    "reason": record["reason"][:140],
                    "report": storage.uri(storage.LlmKeys(assistant).report(record["window"], record["run"])),
                }
            )
    return rows


def summarise(label: str, record: dict) -> dict:
    challenger = record.get("challenger") or {}
    performance = record.get("performance") or {}
    value = performance.get("value")
    return {
        "domain": record["domain"],
        "step": label,
        "batch": record["batch_id"],
        "valid": "no" if record["quarantined"] else "yes",
        "drift": f"{record['drift']['share']:.2f}" + (" !" if record["drift"]["detected"] else ""),
        "metric": f"{performance.get('metric', '')}={value:.3f}" if value is not None else "-",
        "retrain": ",".join(record["retrain"]["reasons"]) or "-",
        "challenger": (
            f"v{challenger['version']} " + ("blessed" if challenger.get("blessed") else "not blessed")
            if challenger
            else "-"
        ),
        "promoted": "yes" if record["promoted"] else "no",
        "champion": f"v{record['champion']['version']}" if record.get("champion") else "-",
        "report": record["drift"].get("report") or (record["validation"].get("report") or ""),
    }


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no batches)"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
