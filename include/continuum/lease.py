"""One decision at a time per domain, wherever the decide DAG runs: a lease held in S3.

`max_active_runs=1` serialises the scheduler's `<domain>_decide` runs, but
`continuum ingest --run` runs the same DAG in-process with `dag.test()`, which ignores
it. So a run takes the domain's lease (`Keys.decision_lease()`) before it picks a
batch, renews it at the start of every step, and releases it at its end. The lease is
one JSON object written with S3 conditional writes: `If-None-Match: *` to create it,
`If-Match: <etag>` to renew, take over or delete it. The check and the write are one
atomic step on S3 (AWS, MinIO, and the moto endpoint of the embedded platform and the
tests, where `local.s3server.serialise_conditional_writes` makes them so), so of two
runs racing for a free lease exactly one wins.

- `acquire` takes a free lease, renews the holder's own (a retry of the same run, or
  the run's next step), takes over one that expired (`settings.decision_lease_ttl()`:
  longer than any step can run plus its retry delay), and refuses a live lease of
  another holder with `LeaseHeld`.
- `release` deletes the holder's own lease and leaves anyone else's alone.
- A read or write that fails for any other reason (S3 down, no access) raises: an
  error is never read as "free".

Holders are Airflow run ids (unique per DAG), so the scheduler and the CLI see each
other. No Airflow import here.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from continuum import settings, storage
from continuum.storage import Keys

log = logging.getLogger(__name__)

ATTEMPTS = 5  # conditional writes lost in a row before giving up (each loss means someone else wrote)


@dataclass(frozen=True)
class Lease:
    domain: str
    holder: str
    batch_id: str | None
    acquired_at: datetime
    expires_at: datetime
    etag: str

    def live(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or _now())

    def describe(self) -> str:
        batch = f"batch {self.batch_id}" if self.batch_id else "no batch picked yet"
        return f"run {self.holder} ({batch}, since {_iso(self.acquired_at)}, lease until {_iso(self.expires_at)})"


class LeaseHeld(RuntimeError):
    """Another run is deciding this domain's batches; its lease is still live."""

    def __init__(self, lease: Lease):
        self.lease = lease
        super().__init__(
            f"{lease.domain} is being decided by {lease.describe()}; nothing was decided twice: "
            "the batch stays queued, run again when that run is done"
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def current(domain: str) -> Lease | None:
    """The domain's lease as S3 has it (live or expired), or None when nobody holds one."""
    found = storage.get_json_tagged(Keys(domain).decision_lease())
    if found is None:
        return None
    doc, etag = found
    return Lease(
        domain=domain,
        holder=doc["holder"],
        batch_id=doc.get("batch_id"),
        acquired_at=datetime.fromisoformat(doc["acquired_at"]),
        expires_at=datetime.fromisoformat(doc["expires_at"]),
        etag=etag,
    )


def acquire(
    domain: str,
    holder: str,
    batch_id: str | None = None,
    now: datetime | None = None,
    ttl: timedelta | None = None,
) -> Lease:
    """Take, renew or take over the domain's lease for `holder`; `LeaseHeld` when another's is live.

    `batch_id` names the batch the holder decides (kept from the lease when not given).
    `ttl` (default `settings.decision_lease_ttl()`) is longer for a run that waits for a
    person's approval: the domain stays its own until the approval's timeout.
    """
    for _ in range(ATTEMPTS):
        moment = now or _now()
        found = current(domain)
        if found is not None and found.holder != holder and found.live(moment):
            log.info(
                "event=decision_lease_held domain=%s holder=%s batch_id=%s expires_at=%s asked_by=%s",
                domain, found.holder, found.batch_id, _iso(found.expires_at), holder,
            )
            raise LeaseHeld(found)
        mine = found is not None and found.holder == holder
        lease = Lease(
            domain=domain,
            holder=holder,
            batch_id=batch_id or (found.batch_id if mine else None),
            acquired_at=found.acquired_at if mine else moment,
            expires_at=moment + (ttl or settings.decision_lease_ttl()),
            etag="",
        )
        doc = {
            "holder": holder,
            "batch_id": lease.batch_id,
            "acquired_at": lease.acquired_at.isoformat(),
            "renewed_at": moment.isoformat(),
            "expires_at": lease.expires_at.isoformat(),
            "token": uuid.uuid4().hex,  # every write has a new ETag, so a stale If-Match always loses
        }
        try:
            etag = storage.put_json_if(Keys(domain).decision_lease(), doc, found.etag if found else None)
        except storage.Conflict:
            continue  # someone wrote between our read and our write: read again and decide again
        if found is not None and not mine:
            log.warning(
                "event=decision_lease_taken_over domain=%s holder=%s previous=%s previous_expired_at=%s",
                domain, holder, found.holder, _iso(found.expires_at),
            )
        elif not mine:
            log.info("event=decision_lease_acquired domain=%s holder=%s", domain, holder)
        return Lease(**{**lease.__dict__, "etag": etag})
    raise RuntimeError(f"the decision lease of {domain} changed {ATTEMPTS} times while {holder} tried to take it")


def release(domain: str, holder: str) -> bool:
    """Drop `holder`'s lease; False (and nothing changes) when the lease is gone or someone else's."""
    for _ in range(ATTEMPTS):
        found = current(domain)
        if found is None or found.holder != holder:
            log.info(
                "event=decision_lease_not_released domain=%s holder=%s current=%s",
                domain, holder, found.holder if found else None,
            )
            return False
        try:
            storage.delete_if(Keys(domain).decision_lease(), found.etag)
        except storage.Conflict:
            continue
        log.info("event=decision_lease_released domain=%s holder=%s batch_id=%s", domain, holder, found.batch_id)
        return True
    raise RuntimeError(f"the decision lease of {domain} changed {ATTEMPTS} times while {holder} tried to release it")
