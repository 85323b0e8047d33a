"""The `continuum` command: the platform, domains and batches, assistants and their logs, the demo.

Every command honours CONTINUUM_HOME, CONTINUUM_DOMAINS_PATH, MLFLOW_TRACKING_URI
and AWS_ENDPOINT_URL, and starts the embedded services it needs when none is
configured. Errors a user can cause end in one line on stderr and exit code 2; an
unreachable MLflow or S3 ends in one line naming it and exit code 3; `ingest --run`
while another run (the scheduler's, or another command's) is deciding the domain ends
in one line naming that run and exit code 4, having decided nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

from continuum import outages, specs
from continuum.lease import LeaseHeld
from continuum.llm.specs import UnknownAssistant


class UserError(Exception):
    """A mistake the user can fix; printed as one line, no traceback."""


def cmd_platform(args: argparse.Namespace) -> int:
    from continuum.local import platform

    return platform.run(production=args.production)


# How the champion's MLflow signature names the spec's column types.
_SIGNATURE_TYPES = {"int": "long", "float": "double", "category": "string", "string": "string", "bool": "boolean"}


def champion_gaps(spec: specs.DomainSpec, inputs: dict[str, str]) -> list[str]:
    """What the champion (whose signature takes `inputs`, column -> MLflow type) needs that the
    spec no longer gives it: a removed column, a retyped one, or one that is no longer a feature."""
    declared = {c.name: c for c in spec.data.columns}
    features = {c.name for c in spec.data.feature_columns}
    gaps = []
    for name, kind in inputs.items():
        column = declared.get(name)
        if column is None:
            gaps.append(f"column '{name}' was removed")
        elif _SIGNATURE_TYPES.get(column.type, kind) != kind and not (kind == "long" and column.type == "float"):
            gaps.append(f"column '{name}' is now {column.type}, the champion was trained on {kind}")
        elif name not in features:
            gaps.append(f"column '{name}' is no longer a feature")
    return gaps


def _champion_inputs(name: str) -> dict[str, str] | None:
    """The champion's input columns and types from its logged signature; None without a champion."""
    import mlflow

    from continuum import registry

    if registry.champion(name) is None:
        return None
    signature = mlflow.models.get_model_info(f"models:/{name}@champion").signature
    if signature is None:
        return None
    return {c.name: getattr(c.type, "name", str(c.type)) for c in signature.inputs.inputs}


def _check_champions(loaded: list[specs.DomainSpec]) -> list[str]:
    from continuum.local.services import embedded_services

    problems = []
    with embedded_services(migrate=False):
        for spec in loaded:
            inputs = _champion_inputs(spec.name)
            for gap in champion_gaps(spec, inputs or {}):
                problems.append(
                    f"{spec.source}: {gap}, but the live champion of '{spec.name}' needs it; restore the column"
                    f" in the spec, or let a challenger trained on the new contract replace the champion first"
                )
    return problems


def cmd_domains(args: argparse.Namespace) -> int:
    from continuum.llm.specs import load_assistants

    loaded, errors = specs.load_domains(import_estimators=True)  # also: is each estimator a BaseEstimator
    assistants, assistant_errors = load_assistants()
    errors += assistant_errors
    for spec in loaded:
        print(f"{spec.name:28} owner={spec.owner:16} metric={spec.monitoring.primary_metric} ({spec.source})")
    if getattr(args, "champions", False):
        errors += _check_champions(loaded)
    for assistant in assistants:
        print(f"{assistant.name:28} owner={assistant.owner:16} assistant, primary={assistant.primary_score} ({assistant.source})")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def ingest(domain: str, path: Path, run: bool) -> dict:
    """Land a file and, with `run`, drive the domain's DAGs until its decision record is final.

    A batch landed before (same bytes) is resumed from its first unfinished step; a
    finished one is printed as it is. Batches queued before it are decided first,
    since a domain decides in arrival order.
    """
    from continuum import decision, landing, storage

    spec = specs.get_domain(domain)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a CSV or Parquet batch")
    data = path.read_bytes()
    if run:
        outages.check_services()  # seconds, not the retries of every task, to learn a service is down
    storage.ensure_bucket()
    key = landing.land_file(spec.name, str(path), data)
    batch_id = storage.batch_id_for(data)
    print(f"landed {storage.uri(key)} batch_id={batch_id}")
    if not run:
        return {"domain": spec.name, "batch_id": batch_id, "landed": storage.uri(key)}
    from continuum import batches, dagrun

    _refuse_while_decided_elsewhere(spec.name)
    dagrun.run(f"{spec.name}_land")
    # One decide run per waiting batch, oldest first, until ours is done; each run resumes
    # its batch from the first step the decision record does not list as done.
    for _ in range(len(batches.pending(spec.name)) + 1):
        if decision.load(spec.name, batch_id).finished:
            break
        _refuse_while_decided_elsewhere(spec.name)  # its next_batch would skip, deciding nothing
        dagrun.run(f"{spec.name}_decide")
    record = decision.load(spec.name, batch_id)
    if not record.finished:
        _refuse_while_decided_elsewhere(spec.name)  # the scheduler took the lease between two runs
        raise dagrun.DagRunFailed(f"batch {batch_id} of {spec.name} is still unfinished; see docs/runbook.md")
    return record.model_dump(mode="json")


def land_labels(domain: str, path: Path, run: bool) -> dict:
    """Land a labels file and, with `run`, process it (`<domain>_land`) and decide the batches it queued."""
    from continuum import labels, storage

    spec = specs.get_domain(domain)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a CSV or Parquet file of {spec.data.id_column} and {spec.data.target}")
    data = path.read_bytes()
    if run:
        outages.check_services()
    storage.ensure_bucket()
    key = labels.land_labels_file(spec.name, path.name, data)
    labels_id = storage.batch_id_for(data)
    print(f"landed {storage.uri(key)} labels_id={labels_id}")
    if not run:
        return {"domain": spec.name, "labels_id": labels_id, "landed": storage.uri(key)}
    from continuum import batches, dagrun, decision

    dagrun.run(f"{spec.name}_land")  # register_labels, which may land labelled batches
    dagrun.run(f"{spec.name}_land")  # registers what it landed, whatever order the first run took
    for _ in range(len(batches.pending(spec.name))):
        _refuse_while_decided_elsewhere(spec.name)  # one decision at a time, as for `ingest --run`
        dagrun.run(f"{spec.name}_decide")
    found = labels.outcome(spec.name, labels_id) or {}
    decided = [decision.load(spec.name, b).model_dump(mode="json") for b in found.get("labelled_batches", [])]
    return {**found, "decisions": decided}


def cmd_labels(args: argparse.Namespace) -> int:
    from continuum.local.services import embedded_services

    specs.get_domain(args.domain)
    with embedded_services():
        outcome = land_labels(args.domain, Path(args.path), args.run)
    print(json.dumps(outcome, separators=(",", ":"), default=str))
    return 0


def _refuse_while_decided_elsewhere(domain: str) -> None:
    """`LeaseHeld` when another run holds the domain's live decision lease (this command holds none between runs)."""
    from continuum import lease

    held = lease.current(domain)
    if held is not None and held.live():
        raise lease.LeaseHeld(held)


def cmd_ingest(args: argparse.Namespace) -> int:
    from continuum.local.services import embedded_services

    specs.get_domain(args.domain)  # a spec error or an unknown name before any service starts
    with embedded_services():
        record = ingest(args.domain, Path(args.path), args.run)
    print(json.dumps(record, separators=(",", ":")))
    return 0


def status(domain: str, limit: int = 5) -> dict:
    from continuum import batches, decision, labels, registry

    spec = specs.get_domain(domain)

    def role(ref) -> dict | None:
        return None if ref is None else ref.model_dump(mode="json", include={"version", "metrics", "created_at", "run_id"})

    decisions = decision.latest(spec.name, limit)
    return {
        "domain": spec.name,
        "owner": spec.owner,
        "primary_metric": spec.monitoring.primary_metric,
        "floor": spec.monitoring.floor,
        "champion": role(registry.champion(spec.name)),
        "previous": role(registry.previous(spec.name)),
        # Checks of severity `warn` that failed: the batches went on, someone should still look.
        "warnings": [
            {"batch_id": r.batch_id, "checks": r.validation.warnings, "report": r.validation.report}
            for r in decisions
            if r.validation.warnings
        ],
        "pending": batches.pending(spec.name),  # waiting for their decision, oldest first
        # Per scored batch: the metric estimated before labels (CBPE) and the one realised on late labels.
        "performance": labels.performance(spec.name, decisions),
        "decisions": [r.model_dump(mode="json") for r in decisions],
    }


def cmd_status(args: argparse.Namespace) -> int:
    from continuum.local.services import embedded_services

    specs.get_domain(args.domain)  # a spec error or an unknown name before any service starts
    with embedded_services(migrate=False):
        print(json.dumps(status(args.domain, args.limit), indent=2))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """The champion's score for one row, its reason codes and the model version (JSON)."""
    from continuum import explain
    from continuum.local.services import embedded_services

    spec = specs.get_domain(args.domain)
    try:
        row = explain.parse_row(spec, args.row)  # a bad row says so before any service starts
        with embedded_services(migrate=False):
            payload = explain.explain_row(spec, row)
    except (explain.RowError, explain.NoChampion) as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(payload, indent=2))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from continuum import registry
    from continuum.local.services import embedded_services

    spec = specs.get_domain(args.domain)
    with embedded_services(migrate=False):
        try:
            moved = registry.rollback(spec.name)
        except registry.RegistryError as exc:
            raise UserError(str(exc)) from exc
    print(json.dumps({"domain": spec.name, **moved}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the champion with `mlflow models serve` (continuum.serving) until Ctrl-C."""
    import subprocess

    from continuum import model_loading, serving
    from continuum.local.services import embedded_services

    spec = specs.get_domain(args.domain)
    with embedded_services(migrate=False):
        try:
            serve = serving.command(spec.name, port=args.port, host=args.host)
        except (serving.NoChampion, model_loading.UnsafeModel) as exc:
            raise UserError(str(exc)) from exc
        print(json.dumps({"domain": spec.name, "model_uri": serve.model_uri, "version": serve.version,
                          "invocations": f"http://{args.host}:{args.port}/invocations"}), flush=True)
        try:
            return subprocess.run(serve.argv, env=serve.env, check=False).returncode
        except KeyboardInterrupt:
            return 0


def approve(domain: str, batch_id: str, reject: bool = False, comment: str = "", by: str | None = None) -> dict:
    """Answer the `approve` task waiting on `batch_id`'s challenger; returns what was answered.

    The waiting run is the one holding the domain's decision lease for that batch.
    """
    import getpass

    from continuum import approval, dagrun, lease

    spec = specs.get_domain(domain)
    if not approval.required(spec):
        raise UserError(f"{spec.name} does not require approval (blessing.approval is {spec.blessing.approval})")
    held = lease.current(spec.name)
    if held is None or held.batch_id != batch_id:
        deciding = f"batch {held.batch_id}" if held is not None else "nothing"
        raise UserError(f"no approval is waiting for {spec.name} batch {batch_id} ({deciding} is being decided); "
                        f"`continuum status {spec.name}` shows the batches")
    chosen = approval.REJECT if reject else approval.APPROVE
    who = by or getpass.getuser()
    try:
        dagrun.answer(f"{spec.name}_decide", held.holder, "approve", [chosen], who, {"comment": comment})
    except dagrun.NothingWaiting as exc:
        raise UserError(f"{exc}; nothing was answered") from exc
    return {"domain": spec.name, "batch_id": batch_id, "answer": chosen, "by": who, "comment": comment or None}


def cmd_approve(args: argparse.Namespace) -> int:
    from continuum.local.services import embedded_services

    specs.get_domain(args.domain)
    with embedded_services(migrate=False):
        print(json.dumps(approve(args.domain, args.batch_id, args.reject, args.comment or "", args.by)))
    return 0


def card(domain: str, version: str | None = None) -> dict:
    """The model card of `version` of `domain` (default: the champion), as logged to its MLflow run."""
    from mlflow.exceptions import MlflowException

    from continuum import model_card, registry

    spec = specs.get_domain(domain)
    if version is not None and not version.isdigit():
        raise UserError(f"--version '{version}' is not a version number; give one like --version 3")
    if version is None:
        champion = registry.champion(spec.name)
        if champion is None:
            raise UserError(f"{spec.name} has no champion yet; train one (continuum ingest --run) or give --version")
        version = champion.version
    try:
        return model_card.read(spec.name, version)
    except model_card.NoCard as exc:
        raise UserError(str(exc)) from exc
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise UserError(f"{spec.name} has no version {version}; `continuum status {spec.name}` names its champion") from exc


def cmd_card(args: argparse.Namespace) -> int:
    from continuum import model_card
    from continuum.local.services import embedded_services

    specs.get_domain(args.domain)  # a spec error or an unknown name before any service starts
    with embedded_services(migrate=False):
        found = card(args.domain, args.version)
    print(json.dumps(found, indent=2) if args.json else model_card.to_markdown(found).rstrip("\n"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from continuum import demo, simulate
    from continuum.local.services import embedded_services

    domains = args.domains or [s.name for s in specs.load_domains()[0] if s.name in simulate.DOMAINS]
    with embedded_services():
        rows = demo.run_story(domains, lambda domain, path: ingest(domain, path, run=True))
        llm_rows = [] if args.no_llm else demo.run_llm_story(lambda name, path: llm_ingest(name, path, run=True))
    print(demo.table(rows))
    if llm_rows:
        print()
        print(demo.table(llm_rows))
    print("\nReports: drift and validation paths above; prompt evaluations under s3://continuum/llm/decisions/")
    return 0


def llm_ingest(assistant: str, path: Path, run: bool) -> dict:
    """Land a JSONL log and, with `run`, evaluate it through the assistant's DAGs; returns the decision."""
    from continuum import storage
    from continuum.llm import evaluation, intake
    from continuum.llm.specs import get_assistant

    spec = get_assistant(assistant)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a JSON Lines file of conversations")
    if run:
        outages.check_services()
    storage.ensure_bucket()
    key = intake.land_logs(spec.name, path.name, path.read_bytes())
    print(f"landed {storage.uri(key)}")
    if not run:
        return {"assistant": spec.name, "landed": storage.uri(key)}
    from continuum import dagrun

    dagrun.run(f"{spec.name}_conversations_land")
    dagrun.run(f"{spec.name}_prompt_eval")
    return evaluation.latest_decision(spec.name)


def llm_status(assistant: str) -> dict:
    from continuum import overview
    from continuum.llm import evaluation
    from continuum.llm.specs import get_assistant

    spec = get_assistant(assistant)
    latest = evaluation.latest_decision(spec.name)
    production, candidates = overview.prompt_roles(spec.name, (latest or {}).get("versions", {}))
    return {"assistant": spec.name, "production": production, "candidates": candidates, "latest_decision": latest}


def cmd_llm(args: argparse.Namespace) -> int:
    from continuum.local.services import embedded_services

    with embedded_services(migrate=args.action == "ingest" and args.run):
        if args.action == "ingest":
            payload = llm_ingest(args.assistant, Path(args.path), args.run)
            print(json.dumps(payload, separators=(",", ":")))
        else:
            print(json.dumps(llm_status(args.assistant), indent=2))
    return 0


def alerts_since(text: str | None):
    """An ISO time (`2026-03-02`, `2026-03-02T09:00`, `...Z`) as an aware UTC datetime."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"--since '{text}' is not an ISO date or time; write e.g. 2026-03-02 or 2026-03-02T09:00Z") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_alerts(args: argparse.Namespace) -> int:
    """The recorded alerts (S3 audit trail) as JSON lines, newest last."""
    from continuum import alert_delivery, alerts
    from continuum.local.services import embedded_services

    if args.kind is not None and args.kind not in alerts.KINDS:
        raise UserError(f"unknown alert kind '{args.kind}'; use one of {', '.join(alerts.KINDS)}")
    if args.domain is not None and not re.fullmatch(r"[a-z0-9_]+", args.domain):
        raise UserError(f"'{args.domain}' is not a domain or assistant name ([a-z0-9_]+)")
    since = alerts_since(args.since)
    with embedded_services(migrate=False):
        for alert in alert_delivery.recorded(args.domain, since=since, kind=args.kind):
            print(json.dumps(alert, separators=(",", ":"), default=str))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="continuum", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    platform = sub.add_parser("platform", help="the embedded local platform")
    platform_sub = platform.add_subparsers(dest="action", required=True)
    platform_run = platform_sub.add_parser("run", help="run Airflow, MLflow and S3 in the foreground")
    platform_run.add_argument("--production", action="store_true", help="CeleryExecutor on Postgres and Redis")
    platform_run.set_defaults(func=cmd_platform)

    domains = sub.add_parser("domains", help="list the domains and assistants and report broken specs")
    domains.add_argument(
        "--champions", action="store_true", help="also report columns a live champion needs that its spec dropped"
    )
    domains.set_defaults(func=cmd_domains)

    ingest_cmd = sub.add_parser("ingest", help="land a CSV or Parquet batch for a domain")
    ingest_cmd.add_argument("domain")
    ingest_cmd.add_argument("path")
    ingest_cmd.add_argument("--run", action="store_true", help="run the domain's DAGs now, in-process")
    ingest_cmd.set_defaults(func=cmd_ingest)

    labels_cmd = sub.add_parser("labels", help="land a file of late labels (id column and target) for a domain")
    labels_cmd.add_argument("domain")
    labels_cmd.add_argument("path")
    labels_cmd.add_argument("--run", action="store_true", help="process it now and decide the batches it queues")
    labels_cmd.set_defaults(func=cmd_labels)

    status_cmd = sub.add_parser("status", help="champion, previous and the last decisions of a domain (JSON)")
    status_cmd.add_argument("domain")
    status_cmd.add_argument("--limit", type=int, default=5, help="how many recent decisions")
    status_cmd.set_defaults(func=cmd_status)

    explain_cmd = sub.add_parser("explain", help="the champion's score for one row, with its reason codes (JSON)")
    explain_cmd.add_argument("domain")
    explain_cmd.add_argument("--row", required=True, help='one row as a JSON object, e.g. \'{"driver_age": 34, ...}\'')
    explain_cmd.set_defaults(func=cmd_explain)

    rollback_cmd = sub.add_parser("rollback", help="move the champion alias back to the previous version")
    rollback_cmd.add_argument("domain")
    rollback_cmd.set_defaults(func=cmd_rollback)

    serve_cmd = sub.add_parser("serve", help="serve the champion over HTTP with mlflow models serve (POST /invocations)")
    serve_cmd.add_argument("domain")
    serve_cmd.add_argument("--port", type=int, default=5001)
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.set_defaults(func=cmd_serve)

    approve_cmd = sub.add_parser("approve", help="approve (or --reject) the challenger a decision waits on")
    approve_cmd.add_argument("domain")
    approve_cmd.add_argument("batch_id")
    approve_cmd.add_argument("--reject", action="store_true", help="keep the champion")
    approve_cmd.add_argument("--comment", help="why; kept in the decision record")
    approve_cmd.add_argument("--by", help="who answers (default: your login name)")
    approve_cmd.set_defaults(func=cmd_approve)

    card_cmd = sub.add_parser("card", help="the model card of a domain's champion (or of --version V)")
    card_cmd.add_argument("domain")
    card_cmd.add_argument("--version", help="a registered version number; default: the champion")
    card_cmd.add_argument("--json", action="store_true", help="print the card's JSON instead of Markdown")
    card_cmd.set_defaults(func=cmd_card)

    llm = sub.add_parser("llm", help="LLM assistants: land conversation logs, prompt status")
    llm_sub = llm.add_subparsers(dest="action", required=True)
    llm_ingest_cmd = llm_sub.add_parser("ingest", help="land a JSON Lines file of conversations")
    llm_ingest_cmd.add_argument("assistant")
    llm_ingest_cmd.add_argument("path")
    llm_ingest_cmd.add_argument("--run", action="store_true", help="run the prompt evaluation now, in-process")
    llm_ingest_cmd.set_defaults(func=cmd_llm)
    llm_status_cmd = llm_sub.add_parser("status", help="production and candidate prompt versions with scores")
    llm_status_cmd.add_argument("assistant")
    llm_status_cmd.set_defaults(func=cmd_llm)

    alerts_cmd = sub.add_parser("alerts", help="the recorded alerts as JSON lines, newest last")
    alerts_cmd.add_argument("--domain", help="only this domain or assistant")
    alerts_cmd.add_argument("--since", help="only alerts at or after this ISO time (UTC unless it says)")
    alerts_cmd.add_argument("--kind", help="only this kind, e.g. champion_below_floor")
    alerts_cmd.set_defaults(func=cmd_alerts)

    demo_cmd = sub.add_parser("demo", help="run the whole story headless on the shipped domains")
    demo_cmd.add_argument("domains", nargs="*", help="default: every shipped domain with a simulator")
    demo_cmd.add_argument("--no-llm", action="store_true", help="skip the prompt-evaluation story")
    demo_cmd.set_defaults(func=cmd_demo)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except (UserError, specs.UnknownDomain, specs.SpecLoadError, UnknownAssistant) as exc:
        print(f"continuum: {exc}", file=sys.stderr)
        return 2
    except LeaseHeld as exc:
        print(f"continuum: {exc}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        outage = outages.describe(exc)
        if outage is None:
            raise
        print(f"continuum: {outage}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
