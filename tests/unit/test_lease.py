"""The per-domain decision lease in S3 (conditional writes against the moto server)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from continuum import lease, settings, storage
from continuum.storage import Keys

DOMAIN = "insurance_claim_risk"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_acquire_renew_and_release(s3):
    taken = lease.acquire(DOMAIN, "run-a", now=T0)
    assert (taken.holder, taken.batch_id, taken.acquired_at) == ("run-a", None, T0)
    assert taken.expires_at == T0 + settings.decision_lease_ttl()

    later = T0 + timedelta(minutes=5)
    renewed = lease.acquire(DOMAIN, "run-a", "0123456789abcdef", now=later)  # the run's next step
    assert renewed.etag != taken.etag and renewed.acquired_at == T0
    assert renewed.expires_at == later + settings.decision_lease_ttl()
    assert lease.acquire(DOMAIN, "run-a", now=later).batch_id == "0123456789abcdef"  # kept when not given
    assert lease.current(DOMAIN).holder == "run-a"

    assert lease.release(DOMAIN, "run-a") is True
    assert lease.current(DOMAIN) is None and not storage.exists(Keys(DOMAIN).decision_lease())
    assert lease.release(DOMAIN, "run-a") is False  # a retried release is harmless


def test_a_live_lease_of_another_run_is_refused_naming_its_holder(s3):
    lease.acquire(DOMAIN, "scheduled__run", "0123456789abcdef", now=datetime.now(UTC))
    with pytest.raises(lease.LeaseHeld) as refused:
        lease.acquire(DOMAIN, "manual__cli")
    message = str(refused.value)
    assert "run scheduled__run" in message and "batch 0123456789abcdef" in message and "\n" not in message
    assert lease.release(DOMAIN, "manual__cli") is False  # nobody releases another run's lease
    assert lease.current(DOMAIN).holder == "scheduled__run"


def test_an_expired_lease_is_taken_over_and_its_old_holder_is_then_refused(s3):
    lease.acquire(DOMAIN, "run-a", now=T0)
    just_before = T0 + settings.decision_lease_ttl() - timedelta(seconds=1)
    with pytest.raises(lease.LeaseHeld):
        lease.acquire(DOMAIN, "run-b", now=just_before)
    after = T0 + settings.decision_lease_ttl() + timedelta(seconds=1)
    taken = lease.acquire(DOMAIN, "run-b", now=after)
    assert taken.holder == "run-b" and taken.acquired_at == after
    with pytest.raises(lease.LeaseHeld):  # run-a comes back (e.g. its task was retried late)
        lease.acquire(DOMAIN, "run-a", now=after + timedelta(seconds=1))


def test_a_retry_of_the_same_run_reacquires_its_own_lease_even_when_expired(s3):
    lease.acquire(DOMAIN, "run-a", "0123456789abcdef", now=T0)
    much_later = T0 + 3 * settings.decision_lease_ttl()
    again = lease.acquire(DOMAIN, "run-a", now=much_later)
    assert again.holder == "run-a" and again.batch_id == "0123456789abcdef" and again.live(much_later)


def test_the_lease_lifetime_covers_a_step_and_its_retry_delay(monkeypatch):
    monkeypatch.setenv("CONTINUUM_TASK_TIMEOUT_MINUTES", "45")
    assert settings.decision_lease_ttl() == timedelta(minutes=45 + settings.MAX_RETRY_DELAY_MINUTES)


def test_an_s3_error_is_raised_not_read_as_a_free_lease(s3, monkeypatch):
    import socket

    from botocore.exceptions import EndpointConnectionError

    with socket.socket() as sock:  # bound then released: nothing listens there
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage.client.cache_clear()
    try:
        with pytest.raises(EndpointConnectionError):
            lease.acquire(DOMAIN, "run-a")
        with pytest.raises(EndpointConnectionError):
            lease.current(DOMAIN)
    finally:
        storage.client.cache_clear()


def test_access_denied_on_the_lease_is_raised(s3, monkeypatch):
    from botocore.exceptions import ClientError

    def denied(**kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")

    monkeypatch.setattr(storage.client(), "get_object", denied)
    with pytest.raises(ClientError):
        lease.acquire(DOMAIN, "run-a")


def test_of_runs_racing_for_a_free_lease_exactly_one_wins(s3, monkeypatch):
    """The check and the write are one step on the server (moto made atomic, as S3 is).

    moto's server runs in this process (tests/conftest.py): its write, which comes after
    its precondition check, is slowed down so that, without the lock of
    `serialise_conditional_writes`, every racer would pass the check before any writes.
    """
    import time

    from moto.s3.models import S3Backend

    real_put = S3Backend.put_object

    def slow_put(self, bucket_name, key_name, *args, **kwargs):
        if key_name == Keys(DOMAIN).decision_lease():
            time.sleep(0.05)
        return real_put(self, bucket_name, key_name, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_put)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # a server error must show, not be retried into a 412
    storage.client.cache_clear()
    for trial in range(3):
        winners, refused, errors = [], [], []

        def contend(holder: str, winners=winners, refused=refused, errors=errors) -> None:
            try:
                lease.acquire(DOMAIN, holder)
                winners.append(holder)
            except lease.LeaseHeld:
                refused.append(holder)
            except Exception as exc:  # noqa: BLE001 - collected, asserted empty below
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(f"run-{trial}-{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1 and len(refused) == 5 and not errors, (winners, refused, errors)
        assert lease.current(DOMAIN).holder == winners[0]
        assert lease.release(DOMAIN, winners[0])
    storage.client.cache_clear()
