"""How long a run may take before `deadline_missed` pages its owner.

The spec's `deadline_minutes` wins. Without it, the deadline is a multiple of the
mean runtime of the DAG's recent successful runs that did the work, with a floor,
and a default while too few such runs exist (a new domain is paged too). Airflow
evaluates this once per run, when the run is created (the `RecentRuntimeDeadline`
reference in `plugins/continuum_notifier.py` reads the runtimes from its metadata
database and calls `size`). No Airflow import here.

Airflow's own `DeadlineReference.AVERAGE_RUNTIME` was the first choice; it falls short
in three ways that matter here (read in airflow/models/deadline.py, 3.3.2): it averages
every finished run, failed and skipped ones too (a `<domain>_decide` run with nothing
waiting skips in seconds, so a few of those drag the mean far under a real decision);
the deadline is exactly the mean plus a fixed interval, with no margin that scales with
the runtime; and with fewer than `min_runs` runs it creates no deadline at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

DEFAULT_MINUTES = 120.0  # no history yet: two hours, four times a typical local decision with training
MARGIN = 3.0  # a run three times slower than usual is hanging, not slow
MIN_MINUTES = 10.0  # a DAG that usually takes seconds still gets time for a retry with backoff
MIN_RUNS = 3  # fewer successful runs are not a runtime to go by
RECENT_RUNS = 10  # the runs looked at, newest first


@dataclass(frozen=True)
class Sizing:
    minutes: float
    basis: str  # "spec", "recent_runs" or "default": what the minutes came from


def size(spec_minutes: float | None, recent_seconds: Sequence[float]) -> Sizing:
    """The deadline of a run: the spec's minutes, else MARGIN x the mean of the recent runtimes.

    `recent_seconds` are the durations of the DAG's recent successful runs, newest first;
    only the first RECENT_RUNS count, and with fewer than MIN_RUNS the default applies.
    """
    if spec_minutes is not None:
        if spec_minutes <= 0:
            raise ValueError(f"deadline_minutes must be positive, got {spec_minutes}")
        return Sizing(float(spec_minutes), "spec")
    recent = [float(s) for s in recent_seconds[:RECENT_RUNS] if s is not None and s >= 0]
    if len(recent) < MIN_RUNS:
        return Sizing(DEFAULT_MINUTES, "default")
    return Sizing(round(max(MIN_MINUTES, MARGIN * fmean(recent) / 60), 1), "recent_runs")
