"""Delayed labels: labels that arrive days after a batch was scored, and what the champion realised on them.

A labels file (CSV or Parquet: the spec's `data.id_column` and `data.target`, one row per
scored row whose outcome is now known) is landed under `labels/<domain>/`. For each one:

1. Its id is the hash of its bytes: the same file landed again is a duplicate, kept under
   `labelled/<domain>/<labels_id>/duplicates/` and not processed twice.
2. It is validated with the *labels contract*: the spec's id and target columns only, through
   the same GX suite builder as the batch gate (types, allowed values, no missing label, unique
   id), plus "the target is a binary label" when the spec declares no allowed values. A bad
   file is moved to `quarantine/<domain>/labels/<labels_id>/` with `report.json` and the owner
   gets `batch_quarantined`; it is never dropped silently. So is a file whose ids match no
   scored, unlabelled batch (land it again once its batch is scored).
3. It is joined, batch by batch, to the probabilities the champion served: the scores file
   (`scores/<domain>/<batch_id>.parquet`: the id and the probability column, see
   `scoring.PROBABILITY_COLUMNS`). A recommendations domain's scores keep only the top k rows
   per user and no id, so its validated batch is re-scored with the version that scored it
   (the record's `champion` after `score`): the realised metric is then over every labelled
   impression, as `monitor` would have measured it, not over the k shown. Batches that
   arrived labelled are skipped: `monitor` measured them.
4. The realised primary metric per batch and per `blessing.segment_column` segment, the
   version's holdout metric at blessing, their gap, and the CBPE estimate made before the labels
   (`decision.estimate`) go to `realised/<domain>/<batch_id>/<labels_id>.json`. Nothing in it
   depends on the clock, so a retried task rewrites the same bytes.
5. On the newest batch scored by the current champion: `champion_below_floor` when the
   realised metric is under `monitoring.floor`, `realised_gap` when it is worse than the
   holdout metric by more than `monitoring.max_realised_gap`; `resolved` once when they clear.
   The hourly `continuum_health` re-applies them from the champion's newest record
   (`newest_realised`), so they stay counted while it is the newest and clear with the next one.
6. Labels that can move a decision become a **labelled batch**: when the realised metric is
   below the floor, or a retrain is waiting for labels (`retrain-waiting-for-labels.json`),
   the batch's validated rows that have a label, with the label, are landed under
   `landing/<domain>/` as `labelled-<batch_id>-<labels_id>.csv`. The ordinary path takes it
   from there: registered and queued by `<domain>_land`, validated by `gate`, and `monitor`
   finds the champion below the floor (reason `performance`) and/or serves the waiting retrain
   (`carried_from`), so the challenger learns from exactly those rows. Other labels are only
   recorded.
7. `labelled/<domain>/<labels_id>/outcome.json` is written last ("processed"), then the
   landing file is deleted: a crash anywhere before leaves the file in place and the next scan
   does the same work again.

Where it runs: in `<domain>_land`'s minute scan (task `register_labels`), not in the hourly
`continuum_health`. Labels are data landing like batches, so they get the same latency (a
minute, not up to an hour), the same per-domain serialisation (`max_active_runs=1`) and the
same owner; the labelled batch they make is announced by that DAG's `register_landed`. The
health DAG is one hourly run over every domain and assistant, and a GX validation plus model
loads per labels file would hold up its digest.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from continuum import decision, storage
from continuum.storage import Keys

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from continuum.alerts import Condition
    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)


class BadLabels(ValueError):
    """A labels file that cannot be used; `reason` is one line for the report and the alert."""

    def __init__(self, reason: str, failed: list[str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.failed = failed or []


def land_labels_file(domain: str, name: str, data: bytes) -> str:
    """Put a labels file into the domain's labels landing zone (what `continuum labels` does)."""
    key = f"{Keys(domain).labels_landing}{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{PurePosixPath(name).name}"
    return storage.put_bytes(key, data)


def outcome(domain: str, labels_id: str) -> dict[str, Any] | None:
    """What processing a labels file found (None: not processed yet)."""
    key = Keys(domain).labels(labels_id) + "outcome.json"
    return storage.get_json(key) if storage.exists(key) else None


def register_landed_labels(domain: str) -> list[dict[str, Any]]:
    """Process every labels file waiting under `labels/<domain>/`; returns their outcomes (duplicates left out)."""
    from continuum.specs import get_domain

    spec = get_domain(domain)
    outcomes = []
    for key in storage.list_keys(Keys(domain).labels_landing):
        if not key.endswith("/"):
            outcome = register(spec, key)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


def register(spec: DomainSpec, landing_key: str) -> dict[str, Any] | None:
    """Validate, join and judge one landed labels file; None when the same bytes were processed before."""
    keys = Keys(spec.name)
    data = storage.get_bytes(landing_key)
    labels_id = storage.batch_id_for(data)
    name = PurePosixPath(landing_key).name
    extension = PurePosixPath(name).suffix.lower()
    outcome_key = keys.labels(labels_id) + "outcome.json"
    if storage.exists(outcome_key):
        duplicate = f"{keys.labels(labels_id)}duplicates/{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{name}"
        storage.move(landing_key, duplicate)
        log.info("event=labels_duplicate domain=%s labels_id=%s kept=%s", spec.name, labels_id, duplicate)
        return None
    outcome: dict[str, Any] = {
        "domain": spec.name,
        "labels_id": labels_id,
        "file": name,
        "source_key": landing_key,
    }
    try:
        labels, warnings = read_labels(spec, data, extension)
        outcome["warnings"] = warnings
        storage.put_bytes(keys.labels(labels_id) + f"raw{extension}", data)
        outcome.update(_judge(spec, labels_id, labels))
    except BadLabels as exc:
        outcome.update(_quarantine(spec, labels_id, name, extension, data, exc))
    storage.put_json(outcome_key, outcome)
    storage.delete(landing_key)
    log.info(
        "event=labels_registered domain=%s labels_id=%s quarantined=%s batches=%s labelled_batches=%s",
        spec.name,
        labels_id,
        outcome["quarantined"],
        ",".join(outcome.get("batches", [])) or "-",
        ",".join(outcome.get("labelled_batches", [])) or "-",
    )
    return outcome


def labels_contract(spec: DomainSpec) -> DomainSpec:
    """The spec with a data contract of only the id and the target: what a labels file must meet.

    The id must be unique (a row with two labels is ambiguous) and the label present, whatever
    the batch contract tolerates; extra columns (e.g. when the label was known) only warn.
    """
    from continuum.specs import CheckSetting

    data = spec.data
    if data.id_column is None:
        raise BadLabels(
            f"{spec.name} has no data.id_column, so labels cannot be joined to scores; add one to the spec"
        )
    identity = data.column(data.id_column)
    identity = identity.model_copy(
        update={"nullable": False, "checks": {**identity.checks, "unique": CheckSetting(severity="error")}}
    )
    target = data.column(data.target).model_copy(update={"nullable": False, "checks": {}})
    contract = data.model_copy(
        update={
            "columns": [identity, target],
            "expectations": [],
            "checks": {
                "schema": CheckSetting(severity="warn"),
                "duplicated_rows": CheckSetting(severity="error"),
            },
        }
    )
    return spec.model_copy(update={"data": contract})


def read_labels(spec: DomainSpec, data: bytes, extension: str) -> tuple[pd.DataFrame, list[str]]:
    """(id and target typed as the spec declares them, warnings) of a labels file; BadLabels otherwise."""
    from continuum import validation

    contract = labels_contract(spec)
    try:
        frame = validation.read_batch(data, extension)
    except validation.UnreadableBatch as exc:
        raise BadLabels(exc.reason) from exc
    missing = [c for c in (spec.data.id_column, spec.data.target) if c not in frame.columns]
    if missing:
        raise BadLabels(
            f"the labels file has no column(s) {missing}; a labels file holds {spec.data.id_column} "
            f"(data.id_column) and {spec.data.target} (data.target)"
        )
    result = validation.validate(contract, frame)
    if not result.success:
        raise BadLabels(result.reason or "the labels contract failed", [f.name for f in result.failed])
    labels = validation.conform(contract, frame)
    target = contract.data.column(spec.data.target)
    values = labels[spec.data.target].drop_duplicates().tolist()
    if target.allowed is None and len(values) > 2:
        raise BadLabels(
            f"{spec.data.target} has {len(values)} distinct values ({values[:5]}...); a label is binary: "
            f"{spec.data.positive_label!r} (data.positive_label) or another value"
        )
    return labels, [f.name for f in result.warnings]


def _judge(spec: DomainSpec, labels_id: str, labels: pd.DataFrame) -> dict[str, Any]:
    """Realised metrics for every batch the labels cover, their conditions, and the labelled batches."""
    from continuum import alert_delivery, registry

    keys = Keys(spec.name)
    results, rows_by_batch = [], {}
    for batch_id in scored_batches(spec.name):
        found = realised_for_batch(spec, batch_id, labels)
        if found is None:
            continue
        result, rows = found
        results.append({**result, "labels_id": labels_id})  # content only: a re-landed copy writes the same bytes
        rows_by_batch[batch_id] = rows
    matched = sum(r["rows"] for r in results)
    if not results:
        raise BadLabels(
            f"none of the {len(labels)} ids is in a scored, unlabelled batch of {spec.name}; check "
            f"{spec.data.id_column} (data.id_column), or land the file again once its batch is scored"
        )
    champion = registry.champion(spec.name)
    waiting = storage.exists(keys.retrain_request())
    labelled = []
    for result in results:
        moves = result["below_floor"] or waiting
        result["labelled_batch"] = (
            _land_labelled(spec, result["batch_id"], labels_id, rows_by_batch[result["batch_id"]])
            if moves
            else None
        )
        if result["labelled_batch"]:
            labelled.append(result["labelled_batch"])
        storage.put_json(keys.realised(result["batch_id"], labels_id), result)
    current = [r for r in results if champion is not None and r["scored_by"] == champion.version]
    if current:
        for condition in conditions(spec, current[-1]):
            alert_delivery.apply(
                condition,
                occurrence=f"labels:{labels_id}",
                dag_id=f"{spec.name}_land",
                task_id="register_labels",
            )
    return {
        "quarantined": False,
        "reason": None,
        "rows": len(labels),
        "matched_rows": matched,
        "unmatched_rows": len(labels) - matched,
        "batches": [r["batch_id"] for r in results],
        "labelled_batches": labelled,
    }


def scored_batches(domain: str) -> list[str]:
    """Batch ids with a scores file, oldest scored first."""
    prefix = f"scores/{domain}/"
    objects = sorted(storage.list_objects(prefix), key=lambda o: (o["LastModified"], o["Key"]))
    return [
        o["Key"].removeprefix(prefix).removesuffix(".parquet")
        for o in objects
        if o["Key"].endswith(".parquet")
    ]


def realised_for_batch(
    spec: DomainSpec, batch_id: str, labels: pd.DataFrame
) -> tuple[dict, pd.DataFrame] | None:
    """(the realised record, the labelled rows) of one scored batch, or None when no label is for it."""
    import pandas as pd

    from continuum import metrics, monitoring
    from continuum.directions import worse_by

    record = decision.load(spec.name, batch_id)
    if not record.finished or record.scores is None or record.champion is None:
        return None
    validated = storage.get_frame(Keys(spec.name).validated(batch_id))
    target, id_column = spec.data.target, spec.data.id_column
    if target in validated.columns:  # labelled when it arrived: monitor measured it
        return None
    ids = validated[id_column].astype(str)
    label_of = pd.Series(labels[target].to_numpy(), index=labels[id_column].astype(str).to_numpy())
    mask = ids.isin(label_of.index).to_numpy()
    if not mask.any():
        return None
    probabilities, source = served_probabilities(spec, record, validated)
    y, p = label_of.loc[ids[mask]].to_numpy(), probabilities[mask]
    metric = spec.monitoring.primary_metric
    value = metrics.primary_from_scores(spec, y, p)
    holdout = record.champion.metrics.get(metric)
    estimated = record.estimate.value if record.estimate is not None else None
    gap = None if value is None or holdout is None else worse_by(metric, holdout, value)
    result = {
        "domain": spec.name,
        "batch_id": batch_id,
        "metric": metric,
        "value": value,
        "rows": int(mask.sum()),
        "batch_rows": len(validated),
        "positives": int((y == spec.data.positive_label).sum()),
        "floor": spec.monitoring.floor,
        "below_floor": monitoring.below_floor(spec, value),
        "scored_by": record.champion.version,
        "probabilities_from": source,
        "holdout": holdout,
        "gap": gap,
        "max_gap": spec.monitoring.max_realised_gap,
        "estimated": estimated,
        "estimate_error": None if value is None or estimated is None else value - estimated,
        "segment_column": spec.blessing.segment_column,
        "segments": _segments(spec, validated.loc[mask], y, p),
    }
    rows = validated.loc[mask].assign(**{target: y})
    return result, rows[[c.name for c in spec.data.columns if c.name in rows.columns]]


def served_probabilities(
    spec: DomainSpec, record: decision.DecisionRecord, validated: pd.DataFrame
) -> tuple[np.ndarray, str]:
    """The champion's positive-class probability for every row of the validated batch, and where it came from."""
    import numpy as np
    import pandas as pd

    from continuum import registry, scoring

    column, id_column = scoring.PROBABILITY_COLUMNS.get(spec.scoring.kind), spec.data.id_column
    if column is not None:
        scores = storage.get_frame(Keys(spec.name).scores(record.batch_id))
        if id_column in scores.columns and column in scores.columns:
            by_id = pd.Series(
                scores[column].to_numpy(dtype="float64"), index=scores[id_column].astype(str).to_numpy()
            )
            p = by_id.reindex(validated[id_column].astype(str).to_numpy()).to_numpy()
            if np.isnan(p).any():
                raise ValueError(
                    f"{spec.name}: scores/{spec.name}/{record.batch_id}.parquet lacks {int(np.isnan(p).sum())} ids of "
                    "its validated batch; clear the batch's score task to rewrite it"
                )
            return p, "scores"
    version = record.champion.version
    model = registry.load(spec.name, version)
    return np.asarray(scoring.probabilities(spec, model, validated), dtype="float64"), f"rescored:v{version}"


def _segments(spec: DomainSpec, rows: pd.DataFrame, y, p) -> dict[str, dict[str, Any]]:
    """The realised metric per value of `blessing.segment_column` (missing values: segment "None")."""
    from continuum import metrics

    column = spec.blessing.segment_column
    if column is None or column not in rows.columns:
        return {}
    keys = rows[column].astype(object).where(rows[column].notna(), None).to_numpy()
    found = {}
    for segment in sorted(set(keys.tolist()), key=str):
        mask = keys == segment if segment is not None else rows[column].isna().to_numpy()
        found[str(segment)] = {
            "value": metrics.primary_from_scores(spec, y[mask], p[mask]),
            "rows": int(mask.sum()),
            "judged": int(mask.sum()) >= spec.blessing.min_segment_rows,
        }
    return found


def conditions(spec: DomainSpec, result: dict[str, Any]) -> list[Condition]:
    """`champion_below_floor` and `realised_gap` as one realised record says (firing or cleared)."""
    from continuum.alerts import Condition

    base = {"domain": spec.name, "owner": spec.owner, "batch_id": result["batch_id"]}
    if result["value"] is None:
        return []
    facts = {
        "metric": result["metric"],
        "value": result["value"],
        "floor": result["floor"],
        "champion_version": result["scored_by"],
        "rows": result["rows"],
        "labels_id": result["labels_id"],
        "source": "late labels",
    }
    found = [
        Condition(
            kind="champion_below_floor",
            firing=result["below_floor"],
            summary=(
                f"champion v{result['scored_by']} {result['metric']}={result['value']:.4g} on late labels of batch "
                f"{result['batch_id']} ({result['rows']} rows) is under the floor {result['floor']:.4g}; "
                "a labelled batch was queued to retrain"
            ),
            facts={**facts, "labelled_batch": result.get("labelled_batch")},
            **base,
        )
    ]
    if result["gap"] is not None and result["max_gap"] is not None:
        found.append(
            Condition(
                kind="realised_gap",
                firing=result["gap"] > result["max_gap"],
                summary=(
                    f"champion v{result['scored_by']} realised {result['metric']}={result['value']:.4g} on batch "
                    f"{result['batch_id']}, {result['gap']:.4g} worse than its holdout {result['holdout']:.4g} "
                    f"at blessing (allowed {result['max_gap']:.4g})"
                ),
                facts={
                    **facts,
                    "holdout": result["holdout"],
                    "gap": result["gap"],
                    "max_gap": result["max_gap"],
                    "estimated": result["estimated"],
                },
                **base,
            )
        )
    return found


def _land_labelled(spec: DomainSpec, batch_id: str, labels_id: str, rows: pd.DataFrame) -> str:
    """Land the labelled rows as a new batch (the landing/queue path does the rest); returns its batch id."""
    from continuum import landing

    data = rows.to_csv(index=False).encode()
    new_id = storage.batch_id_for(data)
    if not storage.exists(Keys(spec.name).manifest(new_id)):  # registered by an earlier attempt: not again
        landing.land_file(spec.name, f"labelled-{batch_id}-{labels_id}.csv", data)
    log.info(
        "event=labelled_batch domain=%s from_batch=%s labels_id=%s batch_id=%s rows=%d",
        spec.name,
        batch_id,
        labels_id,
        new_id,
        len(rows),
    )
    return new_id


def _quarantine(
    spec: DomainSpec, labels_id: str, name: str, extension: str, data: bytes, exc: BadLabels
) -> dict[str, Any]:
    """Keep a bad labels file with its reason under quarantine/, and tell the owner."""
    from continuum import alert_delivery
    from continuum.alerts import Condition

    where = Keys(spec.name).labels_quarantine(labels_id)
    storage.put_bytes(f"{where}raw{extension}", data)
    report = {
        "domain": spec.name,
        "labels_id": labels_id,
        "file": name,
        "reason": exc.reason,
        "failed": exc.failed,
    }
    storage.put_json(f"{where}report.json", report)
    alert_delivery.apply(
        Condition(
            kind="batch_quarantined",
            domain=spec.name,
            owner=spec.owner,
            firing=True,
            summary=f"labels file {name} quarantined: {exc.reason}",
            facts={"labels_file": name, "labels_id": labels_id, "report": storage.uri(f"{where}report.json")},
        ),
        occurrence=f"labels:{labels_id}",
        dag_id=f"{spec.name}_land",
        task_id="register_labels",
    )
    log.warning("event=labels_quarantined domain=%s labels_id=%s reason=%r", spec.name, labels_id, exc.reason)
    return {
        "quarantined": True,
        "reason": exc.reason,
        "failed": exc.failed,
        "report": storage.uri(f"{where}report.json"),
    }


def newest_realised(domain: str, version: str) -> dict[str, Any] | None:
    """The newest realised record (by write time) of a batch scored by `version`, None when there is none.

    What the hourly health check re-reads: "the champion's metric on labels that arrived late".
    Listing or reading S3 raises on a transient error; only an empty answer means "no labels yet".
    """
    objects = [o for o in storage.list_objects(Keys(domain).realised_root) if o["Key"].endswith(".json")]
    for found in sorted(objects, key=lambda o: (o["LastModified"], o["Key"]), reverse=True):
        record = storage.get_json(found["Key"])
        if str(record.get("scored_by")) == str(version):
            return record
    return None


def realised_values(domain: str, records: list[decision.DecisionRecord]) -> dict[str, float]:
    """The champion's realised metric per scored batch (the last labels file's, by key), for the page's chart."""
    return {
        shown["batch_id"]: shown["realised"][-1]["value"]
        for shown in performance(domain, records)
        if shown["realised"] and shown["realised"][-1].get("value") is not None
    }


def performance(domain: str, records: list[decision.DecisionRecord]) -> list[dict[str, Any]]:
    """Estimated (before labels) and realised (from late labels) metric of each scored batch, for `continuum status`."""
    keys = Keys(domain)
    shown = []
    for record in records:
        if record.scores is None:
            continue
        realised = [storage.get_json(key) for key in storage.list_keys(keys.realised_prefix(record.batch_id))]
        shown.append(
            {
                "batch_id": record.batch_id,
                "scored_by": record.champion.version if record.champion else None,
                "estimated": record.estimate.value if record.estimate else None,
                "realised": [
                    {
                        k: r.get(k)
                        for k in (
                            "labels_id",
                            "value",
                            "rows",
                            "holdout",
                            "gap",
                            "estimate_error",
                            "below_floor",
                            "segments",
                            "labelled_batch",
                        )
                    }
                    for r in realised
                ],
            }
        )
    return shown
