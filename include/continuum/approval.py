"""A person signs off a blessed challenger before it serves (`blessing.approval: required`).

Insurance pricing and fraud models are regulated: the business may require a named
person to approve a model before it prices or flags customers. With the setting, the
decide DAG waits in Airflow's human-in-the-loop `ApprovalOperator` (task `approve`,
between `train` and `promote`). The approver reads the comparison with the champion and
the challenger's model card in the request (Airflow UI, "Required actions"), or answers
with `continuum approve`. A rejection or a timeout leaves the champion in place; the
answer, who gave it and when go into the decision record (`approval`).

This module knows nothing of Airflow: it says whether an answer is needed, writes the
request's text, records the answer and tells `promote` whether it may go on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from continuum import decision
from continuum.specs import DomainSpec, get_domain

log = logging.getLogger(__name__)

APPROVE, REJECT = "Approve", "Reject"  # the ApprovalOperator's own options


@dataclass(frozen=True)
class Request:
    subject: str
    body: str  # Markdown, as the Airflow UI renders it


def required(spec: DomainSpec) -> bool:
    return spec.blessing.approval == "required"


def timeout(spec: DomainSpec) -> timedelta:
    return timedelta(hours=spec.blessing.approval_timeout_hours)


def _awaits_answer(spec: DomainSpec, record: decision.DecisionRecord) -> bool:
    """The spec requires approval and the record has a blessed challenger: someone must answer for it."""
    return required(spec) and record.challenger is not None and record.challenger.blessed


def _answer(record: decision.DecisionRecord) -> decision.Approval | None:
    """The recorded answer about the record's current challenger (one about another version does not count)."""
    answer = record.approval
    return answer if answer is not None and answer.version == record.challenger.version else None


def pending(spec: DomainSpec, record: decision.DecisionRecord) -> bool:
    """A blessed challenger of a domain that requires approval, and no answer recorded for it yet."""
    return _awaits_answer(spec, record) and not record.done("promote") and _answer(record) is None


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def comparison_md(spec: DomainSpec, record: decision.DecisionRecord) -> str:
    """Challenger against champion on the same holdout, and the blessing's verdict, as Markdown."""
    challenger = record.challenger
    champion = record.extra.get("champion_on_holdout") or {}
    before = record.champion_before
    lines = [
        f"Challenger **v{challenger.version}** against champion "
        f"{'**v' + before.version + '**' if before else 'none (first model)'}, on the same holdout of batch "
        f"`{record.batch_id}`. Primary metric `{spec.monitoring.primary_metric}`, floor {spec.bless_floor}.",
        "",
        "| metric | challenger | champion |",
        "|---|---|---|",
        *(f"| {name} | {_num(value)} | {_num(champion.get(name))} |" for name, value in challenger.metrics.items()),
    ]
    if record.baselines is not None and record.baselines.best:
        lines += ["", f"Best simple baseline: `{record.baselines.best}`, gain {_num(record.baselines.gain)}."]
    if challenger.flags:
        lines += ["", "Flags: " + "; ".join(challenger.flags)]
    lines += ["", f"Retrain reasons: {', '.join(record.retrain.reasons) or 'none'}."]
    return "\n".join(lines)


def request(domain: str, batch_id: str) -> Request | None:
    """The approval request for the batch's challenger, or None when no answer is needed.

    None: the spec does not require approval, nothing was blessed, or the answer is already
    recorded (a retried task does not ask twice). The model card is published here, so the
    approver reads what will be kept with the version.
    """
    from continuum import model_card

    spec = get_domain(domain)
    record = decision.load(domain, batch_id)
    if not pending(spec, record):
        return None
    link = model_card.publish(spec, record.challenger.version, record)
    card_md = model_card.to_markdown(model_card.collect(spec, record.challenger.version, record))
    body = "\n\n".join([
        f"## {domain}: promote challenger v{record.challenger.version}?",
        f"Owner: {spec.owner}. Approve to let the shadow check and promotion go on; reject (or let "
        f"{spec.blessing.approval_timeout_hours:g} h pass) and the champion stays. Model card: `{link}`",
        "### Comparison with the champion",
        comparison_md(spec, record),
        "### Model card",
        card_md,
    ])
    log.info("event=approval_requested domain=%s batch_id=%s version=%s", domain, batch_id, record.challenger.version)
    return Request(subject=f"{domain}: promote challenger v{record.challenger.version}?", body=body)


def record_answer(
    domain: str,
    batch_id: str,
    chosen: list[str],
    by: str | None,
    at: datetime | None,
    timed_out: bool = False,
    comment: str | None = None,
) -> decision.Approval:
    """Write the answer into the decision record (once per challenger version; a retry keeps the first)."""
    record = decision.load(domain, batch_id)
    version = record.challenger.version if record.challenger else "-"
    if record.approval is not None and record.approval.version == version:
        return record.approval
    if timed_out:
        outcome = "timed_out"
    elif chosen == [APPROVE]:
        outcome = "approved"
    else:
        outcome = "rejected"
    record.approval = decision.Approval(outcome=outcome, by=by, at=at, comment=comment, version=version)
    record.save()
    log.info("event=approval domain=%s batch_id=%s version=%s outcome=%s by=%s", domain, batch_id, version,
             outcome, by)
    return record.approval


def refusal(spec: DomainSpec, record: decision.DecisionRecord) -> str | None:
    """Why `promote` must not move `champion` for lack of a person's approval, or None when it may."""
    if not _awaits_answer(spec, record):
        return None
    answer = _answer(record)
    if answer is None:
        return (f"blessing.approval is required and nobody approved v{record.challenger.version}; "
                "the champion stays (answer the `approve` task, or run `continuum approve`)")
    if answer.outcome == "approved":
        return None
    if answer.outcome == "timed_out":
        return f"no approval within {spec.blessing.approval_timeout_hours:g} h; the champion stays"
    why = f": {answer.comment}" if answer.comment else ""
    return f"rejected by {answer.by or 'an approver'}{why}"
