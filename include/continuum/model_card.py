"""The model card of a registered version: what it is for, what it learnt from, how it did, why it serves.

One card per version (challengers and rules baselines), written when its decision is
made: `model_card.json` and a readable `model_card.md` in the version's training run,
and the version tag `model_card` (the Markdown's `runs:/` URI), which the decision
record carries wherever it names the version (`card`). `continuum card DOMAIN` prints it.

`build` and `to_markdown` are pure: `build` takes what the registry, the run and the
decision record hold, as plain dicts (`collect` reads them from MLflow), so a test can
check every section on its own data. Sections: intended use and owner, training window
with dataset digests and the spec hash, metrics overall and per segment, the fairness
table and gates, permutation importance, the blessing decision and why, the promotion
and the champion it replaced, known limitations (`limitations` in the spec).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from continuum import fairness, importance, tracking

if TYPE_CHECKING:
    from continuum.decision import DecisionRecord
    from continuum.specs import DomainSpec

log = logging.getLogger(__name__)

JSON = "model_card.json"
MARKDOWN = "model_card.md"
TAG = "model_card"
SECTIONS = (
    "intended_use",
    "training",
    "metrics",
    "fairness",
    "importance",
    "blessing",
    "promotion",
    "limitations",
)


def uri(run_id: str, name: str = MARKDOWN) -> str:
    return f"runs:/{run_id}/{name}"


def _blessing(role: str, spec: DomainSpec, record: dict | None) -> dict[str, Any]:
    challenger = (record or {}).get("challenger") or {}
    if role == "baseline" or not challenger:
        estimator = spec.baseline.estimator if spec.baseline else "the rules"
        return {
            "judged": False,
            "blessed": None,
            "why": f"rules baseline ({estimator}): registered as the first champion without judging,"
            " so the first trained challenger must beat it on the same holdout",
            "why_not": [],
            "flags": [],
            "judged_against": None,
            "champion_on_holdout": None,
        }
    before = record.get("champion_before") or {}
    blessed = bool(challenger.get("blessed"))
    return {
        "judged": True,
        "blessed": blessed,
        "why": "every threshold held" if blessed else "; ".join(challenger.get("why_not") or []),
        "why_not": list(challenger.get("why_not") or []),
        "flags": list(challenger.get("flags") or []),
        "judged_against": before.get("version"),
        "champion_on_holdout": (record.get("extra") or {}).get("champion_on_holdout"),
    }


def _promotion(role: str, record: dict | None) -> dict[str, Any]:
    if role == "baseline" or not (record or {}).get("challenger"):
        return {"outcome": "promoted", "replaced": None, "reasons": ["first champion of the domain"]}
    promotion = record.get("promotion") or {}
    before = record.get("champion_before") or {}
    outcome = promotion.get("outcome")
    return {
        "outcome": outcome,
        # `previous` is what the move replaced; without a move, the champion stays.
        "replaced": promotion.get("previous") if outcome == "promoted" else None,
        "champion_kept": None if outcome == "promoted" else before.get("version"),
        "reasons": list(promotion.get("reasons") or []),
    }


def build(
    spec: DomainSpec,
    version: dict[str, Any],
    run: dict[str, Any],
    evaluation: dict[str, Any],
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card as a JSON-able dict.

    `version`: number, tags, registered_at (the registry's); `run`: run_id, params,
    metrics, datasets [{context, name, digest, source, rows}] (the training run's);
    `evaluation`: fairness, segments, importance (what training logged); `record`: the
    batch's decision record (None for a rules baseline, which nobody judged).
    """
    tags = version.get("tags") or {}
    role = tags.get("role", "model")
    params = run.get("params") or {}
    primary = spec.monitoring.primary_metric
    window = [b for b in params.get("window", "").split(",") if b] or [tags.get("batch_id")]
    overall = {k: v for k, v in (run.get("metrics") or {}).items() if not k.startswith(("importance.", "champion_"))}
    report = evaluation.get("fairness")
    return _json_safe({
        "domain": spec.name,
        "version": str(version["number"]),
        "role": role,
        "run_id": run["run_id"],
        "registered_at": version.get("registered_at"),
        "intended_use": {"description": spec.description, "owner": spec.owner, "scoring": spec.scoring.kind},
        "training": {
            "batch_id": tags.get("batch_id"),
            "window": window,
            "datasets": list(run.get("datasets") or []),
            "estimator": params.get("estimator") or params.get("baseline"),
            "params": {k: v for k, v in params.items() if k not in ("window", "estimator")},
            "seed": spec.training.seed,
            "spec_hash": tags.get("spec_hash"),
            "spec_hash_now": spec.content_hash(),
        },
        "metrics": {
            "primary": primary,
            "floor": spec.bless_floor,
            "overall": overall,
            "segments": evaluation.get("segments"),
        },
        "fairness": {
            "report": report,
            "gates": fairness.judge(spec, report) if report is not None and spec.blessing.fairness else [],
        },
        "importance": {**(evaluation.get("importance") or {}), "flags": importance.flags(evaluation.get("importance"))},
        "blessing": _blessing(role, spec, record),
        "promotion": _promotion(role, record),
        "limitations": list(spec.limitations),
    })


def _json_safe(value: Any) -> Any:
    """NaN (an undefined metric, e.g. ROC AUC of a one-class segment) as null: strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Markdown


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_num(v) for v in row) + " |" for row in rows]
    return lines


def _training_md(card: dict) -> list[str]:
    t = card["training"]
    lines = [
        "## Training",
        f"- batch: `{t['batch_id']}`; window ({len(t['window'])} batches): {', '.join(f'`{b}`' for b in t['window'])}",
        f"- estimator: `{t['estimator']}`; seed {t['seed']}",
        f"- spec hash (trained under): `{t['spec_hash']}`"
        + ("" if t["spec_hash"] == t["spec_hash_now"] else f" (the spec has changed since: now `{t['spec_hash_now']}`)"),
    ]
    if t["params"]:
        lines.append("- params: " + ", ".join(f"{k}={v}" for k, v in sorted(t["params"].items())))
    lines += ["", *_table(["dataset", "name", "digest", "rows", "source"], [
        [d.get("context"), d.get("name"), d.get("digest"), d.get("rows"), d.get("source")] for d in t["datasets"]
    ])]
    return lines


def _metrics_md(card: dict) -> list[str]:
    m = card["metrics"]
    names = list(m["overall"])
    lines = ["## Metrics (holdout)", f"Primary metric: **{m['primary']}** (floor {_num(m['floor'])}).", ""]
    lines += _table(["metric", "value"], [[k, m["overall"][k]] for k in names])
    segments = m.get("segments")
    if segments:
        groups = segments["segments"]
        columns = ["rows", *(k for k in next(iter(groups.values()), {}) if k != "rows")]
        lines += ["", f"Per segment of `{segments['column']}`:", ""]
        lines += _table([segments["column"], *columns], [[g, *(v.get(c) for c in columns)] for g, v in groups.items()])
    return lines


def _fairness_md(card: dict) -> list[str]:
    f = card["fairness"]
    report = f["report"]
    if report is None:
        return ["## Fairness", "No protected column is declared (`protected: true`), so nothing is measured."]
    lines = ["## Fairness (holdout)", f"Selected means {report['selected']}. Ratios are smallest group / largest "
             "(1 is parity), differences largest - smallest (0 is parity).", ""]
    for column, part in report["columns"].items():
        groups = part["groups"]
        columns = list(next(iter(groups.values()), {}))
        lines += [f"### `{column}`", ""]
        lines += _table(["group", *columns], [[g, *(v.get(c) for c in columns)] for g, v in sorted(groups.items())])
        lines += ["", *_table(["measure", "value"], [[k, v] for k, v in part["measures"].items()]), ""]
    if f["gates"]:
        lines += ["Gates (`blessing.fairness`):", ""]
        lines += _table(["metric", "column", "min", "max", "value", "result"], [
            [g["metric"], g["column"], g["min"], g["max"], g["value"],
             "pass" if g["passed"] and g["value"] is not None else ("fail: " + g["reason"] if not g["passed"] else g.get("note"))]
            for g in f["gates"]
        ])
    return lines


def _importance_md(card: dict) -> list[str]:
    imp = card["importance"]
    if not imp.get("features"):
        return ["## Feature importance", "Not measured."]
    lines = [
        "## Feature importance (permutation, holdout)",
        f"Loss of {imp['score']} when a column is shuffled; {imp['rows']} rows, {imp['repeats']} repeats, seed {imp['seed']}.",
        "",
        *_table(["feature", "importance", "std"], [[k, v["mean"], v["std"]] for k, v in imp["features"].items()]),
    ]
    if imp["flags"]:
        lines += ["", *(f"- flag: {flag}" for flag in imp["flags"])]
    return lines


def _decision_md(card: dict) -> list[str]:
    b, p = card["blessing"], card["promotion"]
    verdict = "not judged" if not b["judged"] else ("blessed" if b["blessed"] else "not blessed")
    lines = ["## Blessing", f"**{verdict}**: {b['why']}"]
    if b["judged_against"]:
        lines.append(f"- judged against champion v{b['judged_against']} on the same holdout")
    lines += [f"- not blessed because: {r}" for r in b["why_not"]]
    lines += [f"- flag: {flag}" for flag in b["flags"]]
    lines += ["", "## Promotion", f"Outcome: **{p['outcome']}**."]
    if p["outcome"] == "promoted":
        lines.append(f"Replaced champion: {'v' + p['replaced'] if p['replaced'] else 'none (first champion)'}.")
    elif p.get("champion_kept"):
        lines.append(f"The champion stays v{p['champion_kept']}.")
    lines += [f"- {r}" for r in p["reasons"]]
    return lines


def to_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown, every section under its own heading."""
    use = card["intended_use"]
    lines = [
        f"# Model card: {card['domain']} v{card['version']} ({card['role']})",
        f"Registered {card['registered_at']}; MLflow run `{card['run_id']}`.",
        "",
        "## Intended use",
        use["description"],
        f"- owner: {use['owner']}; output: {use['scoring']}",
        "",
        *_training_md(card),
        "",
        *_metrics_md(card),
        "",
        *_fairness_md(card),
        "",
        *_importance_md(card),
        "",
        *_decision_md(card),
        "",
        "## Known limitations",
        *([f"- {item}" for item in card["limitations"]] or ["None declared (`limitations` in the spec)."]),
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# MLflow


def _datasets(run) -> list[dict[str, Any]]:
    import json

    found = []
    for entry in run.inputs.dataset_inputs:
        context = next((t.value for t in entry.tags if t.key == "mlflow.data.context"), None)
        dataset = entry.dataset
        profile = json.loads(dataset.profile) if dataset.profile else {}
        source = json.loads(dataset.source).get("uri", dataset.source) if dataset.source else None
        found.append(
            {"context": context, "name": dataset.name, "digest": dataset.digest, "rows": profile.get("num_rows"), "source": source}
        )
    return sorted(found, key=lambda d: str(d["context"]))


def collect(spec: DomainSpec, number: str, record: DecisionRecord | None = None) -> dict[str, Any]:
    """`build` from what MLflow holds for version `number` (raises when MLflow cannot give it)."""
    import mlflow

    client = mlflow.MlflowClient()
    version = client.get_model_version(spec.name, str(number))
    run = client.get_run(version.run_id)
    # Training logs fairness.json only with protected columns and segments.json only with a
    # segment column (as the spec was then): what the run holds is what there is to show.
    evaluation = {name: tracking.logged_dict(version.run_id, f"{name}.json") for name in ("fairness", "segments", "importance")}
    registered = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC).isoformat(timespec="seconds")
    return build(
        spec,
        {"number": version.version, "tags": dict(version.tags or {}), "registered_at": registered},
        {
            "run_id": version.run_id,
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "datasets": _datasets(run),
        },
        evaluation,
        record.model_dump(mode="json") if record is not None else None,
    )


def publish(spec: DomainSpec, number: str, record: DecisionRecord | None = None) -> str:
    """Write the card of version `number` to its run and tag the version; returns the card's URI.

    Written again on a retry with the same content (it follows the registry and the record).
    """
    import mlflow

    card = collect(spec, number, record)
    client = mlflow.MlflowClient()
    client.log_dict(card["run_id"], card, JSON)
    client.log_text(card["run_id"], to_markdown(card), MARKDOWN)
    link = uri(card["run_id"])
    client.set_model_version_tag(spec.name, str(number), TAG, link)
    log.info("event=model_card domain=%s version=%s uri=%s", spec.name, number, link)
    return link


class NoCard(LookupError):
    """The version exists but has no card (its decision is unfinished, or it predates model cards)."""


def read(domain: str, number: str) -> dict[str, Any]:
    """The card logged for version `number` of `domain`; NoCard when the version has none."""
    import mlflow

    version = mlflow.MlflowClient().get_model_version(domain, str(number))
    if TAG not in (version.tags or {}):
        raise NoCard(
            f"{domain} v{number} has no model card yet: its batch's decision is not finished, or it was registered"
            " before model cards; finish the batch (continuum ingest --run) or pick another --version"
        )
    return mlflow.artifacts.load_dict(uri(version.run_id, JSON))
