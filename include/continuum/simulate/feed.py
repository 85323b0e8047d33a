"""A steady feed of simulated batches for the local platform, so the loop runs by itself.

`make run` enables the `continuum_simulator` DAG, which calls `land_next` for each
shipped domain every few minutes. The story cycles: stable data, covariate drift,
a broken batch, concept drift, so the Airflow UI shows every branch of the loop
(training, no-op, promotion, quarantine) within minutes of start.
"""

from __future__ import annotations

import io

from continuum import landing, simulate, storage

ROWS = 3000  # unless the spec's `simulation.rows` says otherwise (rare labels need more)
CYCLE: tuple[tuple[str, dict], ...] = (
    ("stable", {}),
    ("stable", {}),
    ("covariate_drift", {"faults": ["covariate_drift"], "drift": 1.0}),
    ("stable", {}),
    ("broken", {"faults": ["out_of_range", "nulls"]}),
    ("concept_drift", {"faults": ["concept_drift"], "drift": 1.0}),
)


def batches_landed(domain: str) -> int:
    """How many batches the domain has registered so far (its manifests), plus those still waiting."""
    registered = sum(1 for key in storage.list_keys(f"batches/{domain}/") if key.endswith("/manifest.json"))
    return registered + len(storage.list_keys(landing.Keys(domain).landing))


def batch_rows(domain: str) -> int:
    from continuum.specs import get_domain

    return int((get_domain(domain).model_extra.get("simulation") or {}).get("rows", ROWS))


def land_next(domain: str) -> dict:
    """Generate the domain's next batch of the story and put it in its landing zone."""
    step = batches_landed(domain)
    rows = batch_rows(domain)
    label, kwargs = CYCLE[step % len(CYCLE)]
    frame = simulate.generate(domain, n=rows, seed=10_000 + step, **kwargs)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    key = landing.land_file(domain, f"sim-{step:05d}-{label}.csv", buffer.getvalue().encode())
    return {"domain": domain, "step": step, "kind": label, "key": key}


CONVERSATIONS = 300


def land_conversations(assistant: str) -> dict:
    """Land a day's worth of simulated conversation logs, all shipped prompt versions sharing traffic."""
    from datetime import UTC, datetime, timedelta

    from continuum.llm import intake
    from continuum.llm import simulate as llm_simulate

    step = len(storage.list_keys(storage.LlmKeys(assistant).announced_prefix))
    conversations = llm_simulate.generate(
        assistant, n=CONVERSATIONS, seed=20_000 + step, start=datetime.now(UTC) - timedelta(hours=1), malformed=1
    )
    key = intake.land_logs(assistant, f"sim-{step:05d}.jsonl", llm_simulate.to_jsonl(conversations))
    return {"assistant": assistant, "step": step, "key": key}
