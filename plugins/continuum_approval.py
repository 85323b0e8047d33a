"""The `approve` step of a decide DAG: Airflow's `ApprovalOperator`, asking a person only when needed.

Wired by `dags/continuum_domains.py` between `train` and `promote` for a domain whose spec
sets `blessing.approval: required`. The work is in `continuum.approval`; this class only
adapts it to the operator:

- nothing blessed, or the answer already recorded (a retried task): it returns at once;
- otherwise it publishes the model card, puts the comparison with the champion and the card
  in the request, keeps the domain's decision lease for the whole wait, and parks in
  AWAITING_INPUT ("Required actions" in the UI, or `continuum approve`);
- the answer, its author and time, or a timeout (the default answer, Reject), go into the
  decision record; `promote` reads them. Unlike a plain `ApprovalOperator`, a rejection
  does not skip what follows: `promote` records `not_approved` and `score` still scores the
  batch with the champion that stays.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

COMMENT = "comment"


class ChallengerApproval(ApprovalOperator):
    """Wait for a person to approve the batch's blessed challenger before `promote`."""

    template_fields = (*ApprovalOperator.template_fields, "batch_id")

    def __init__(self, *, domain: str, batch_id: str, **kwargs: Any) -> None:
        # The DAG's params (batch_ids) come in through `params` too: the approver's form has only its own.
        kwargs.pop("params", None)
        params = {COMMENT: Param("", type="string", title="Comment (kept in the decision record)")}
        super().__init__(
            subject=f"{domain}: promote the challenger?",
            body="",
            defaults=[ApprovalOperator.REJECT],  # no answer in time: the champion stays
            params=params,
            **kwargs,
        )
        self.domain = domain
        self.batch_id = batch_id

    def execute(self, context: Any) -> Any:
        from continuum import approval, lease, settings

        try:  # the domain stays this run's while a person thinks about it
            lease.acquire(self.domain, context["run_id"], self.batch_id,
                          ttl=self.response_timeout + settings.decision_lease_ttl())
        except lease.LeaseHeld as held:
            raise AirflowSkipException(str(held)) from None
        request = approval.request(self.domain, self.batch_id)
        if request is None:
            self.log.info("event=approval_not_needed domain=%s batch_id=%s", self.domain, self.batch_id)
            return None
        self.subject, self.body = request.subject, request.body
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from continuum import approval

        if "error" in event:  # no answer and no default applied (the defaults make this rare)
            approval.record_answer(self.domain, self.batch_id, [], None, None, timed_out=True)
            return None
        answer = HITLOperator.execute_complete(self, context, event)  # not ApprovalOperator's: no skipping
        user = answer.get("responded_by_user") or {}
        recorded = approval.record_answer(
            self.domain,
            self.batch_id,
            list(answer["chosen_options"]),
            by=user.get("name") or user.get("id"),
            at=answer["responded_at"],
            timed_out=bool(event.get("timedout")),
            comment=(answer.get("params_input") or {}).get(COMMENT) or None,
        )
        return recorded.model_dump(mode="json")
