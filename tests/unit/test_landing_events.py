"""Event-driven landing: S3 notifications parsed, and a landed file registered through the real SQS trigger."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from types import SimpleNamespace

import boto3
import pytest

from continuum import batches, landing, landing_events, settings, storage

DOMAIN = "insurance_claim_risk"


def s3_event(key: str, name: str = "ObjectCreated:Put") -> str:
    return json.dumps({"Records": [{"eventName": name, "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})


def test_created_keys_decodes_keys_and_ignores_test_events_removals_and_garbage():
    assert landing_events.created_keys(s3_event("landing%2Fd%2Fa+b%2Bc.csv")) == ["landing/d/a b+c.csv"]
    sns = json.dumps({"Type": "Notification", "Message": s3_event("landing/d/x.csv", "ObjectCreated:Copy")})
    assert landing_events.created_keys(sns) == ["landing/d/x.csv"]
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})
    for body in (test_event, s3_event("landing/d/x.csv", "ObjectRemoved:Delete"), "not json", "[1]", ""):
        assert landing_events.created_keys(body) == [], body


def test_only_files_under_landing_name_a_domain():
    assert landing_events.landed_domain("landing/d1/2026-a.csv") == "d1"
    for key in ("landing/d1/", "landing/d1", "labels/d1/a.csv", "landing//a.csv", "landing/d1/sub/"):
        assert landing_events.landed_domain(key) is None, key


def test_announced_domains_are_the_known_ones_in_first_mention_order(caplog):
    messages = [{"Body": s3_event(f"landing/{d}/f.csv")} for d in ("b", "ghost", "a", "b")]
    assert landing_events.announced_domains(messages, known=["a", "b"]) == ["b", "a"]
    assert "domain=ghost action=ignored" in caplog.text


def test_messages_come_from_the_trigger_payload_of_each_asset_event():
    events = {"asset": [SimpleNamespace(extra={"from_trigger": True, "payload": {"message_batch": [{"Body": "1"}]}}),
                        SimpleNamespace(extra=None)]}
    assert landing_events.messages_of(events) == [{"Body": "1"}]


def test_two_registrars_on_one_file_queue_it_once(s3, monkeypatch):
    """The events DAG and the safety-net scan may meet on one file: one registers it, neither fails."""
    key = landing.land_file(DOMAIN, "both.csv", b"z\n9\n")
    batch_id = storage.batch_id_for(b"z\n9\n")
    manifest, put_bytes = storage.Keys(DOMAIN).manifest(batch_id), storage.put_bytes

    def other_registrar_writes_the_manifest_meanwhile(k, data, *args):
        if k.endswith("raw.csv") and not storage.exists(manifest):
            storage.put_json(manifest, {"queued_at": "20260101T000000000000Z"})
        return put_bytes(k, data, *args)

    monkeypatch.setattr(storage, "put_bytes", other_registrar_writes_the_manifest_meanwhile)
    assert landing.register(DOMAIN, key) is None and s3.exists(key)  # lost the race: left for the winner
    assert storage.get_json(manifest) == {"queued_at": "20260101T000000000000Z"} and batches.pending(DOMAIN) == []
    assert landing.register_landed(DOMAIN) == [batch_id]  # the next scan finishes what the winner began
    assert batches.pending(DOMAIN) == [batch_id] and not s3.exists(key)
    assert landing.register(DOMAIN, key) is None  # the file is gone: registered elsewhere, not an error


@pytest.fixture
def subscribed(s3, s3_endpoint, monkeypatch):
    """A bucket of this test's own that notifies a fresh SQS queue on the session's moto server."""
    monkeypatch.setenv("CONTINUUM_BUCKET", "continuum-events")
    storage.client.cache_clear()
    storage.ensure_bucket()
    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
    url = landing_events.subscribe(storage.client(), sqs, settings.bucket(), f"continuum-landing-{uuid.uuid4().hex}")
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):  # S3's test event
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    connection = {"conn_type": "aws", "login": "testing", "password": "testing",
                  "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{settings.LANDING_EVENTS_CONN_ID.upper()}", json.dumps(connection))
    yield SimpleNamespace(sqs=sqs, url=url)
    storage.client().put_bucket_notification_configuration(Bucket=settings.bucket(), NotificationConfiguration={})


async def first_event(trigger, timeout: float = 30):
    async def first():
        async for event in trigger.run():
            return event

    return await asyncio.wait_for(first(), timeout)


def test_a_landed_file_reaches_the_real_sqs_trigger_and_is_registered(subscribed):
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    landing.land_file(DOMAIN, "claims.csv", b"a\n1\n")
    trigger = MessageQueueTrigger(scheme="sqs", sqs_queue=subscribed.url, aws_conn_id=settings.LANDING_EVENTS_CONN_ID,
                                  max_messages=10, wait_time_seconds=1, waiter_delay=1)
    event = asyncio.run(first_event(trigger))
    # what the triggerer stores on the watched asset's event (airflow.models.trigger.submit_event)
    asset_events = {"continuum_landing_events": [SimpleNamespace(extra={"from_trigger": True, "payload": event.payload})]}
    messages = landing_events.messages_of(asset_events)
    assert landing_events.announced_domains(messages, [DOMAIN]) == [DOMAIN]
    outcome = landing_events.register_announced([DOMAIN])
    batch_id = storage.batch_id_for(b"a\n1\n")
    assert outcome == {DOMAIN: {"new": [batch_id], "batch_ids": [batch_id]}}
    # the trigger deleted what it received: the same message never registers twice
    assert subscribed.sqs.receive_message(QueueUrl=subscribed.url, WaitTimeSeconds=0).get("Messages", []) == []


def test_a_message_deleted_from_the_queue_fires_nothing_and_the_scan_still_registers_the_file(subscribed):
    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

    landing.land_file(DOMAIN, "lost.csv", b"a\n2\n")
    received = subscribed.sqs.receive_message(QueueUrl=subscribed.url, WaitTimeSeconds=2)["Messages"]
    for message in received:  # the notification was sent, and is lost before the triggerer sees it
        subscribed.sqs.delete_message(QueueUrl=subscribed.url, ReceiptHandle=message["ReceiptHandle"])
    trigger = SqsSensorTrigger(sqs_queue=subscribed.url, aws_conn_id=settings.LANDING_EVENTS_CONN_ID,
                               wait_time_seconds=1, waiter_delay=1)
    with pytest.raises(TimeoutError):
        asyncio.run(first_event(trigger, timeout=4))
    batch_id = storage.batch_id_for(b"a\n2\n")
    assert landing.register_landed(DOMAIN) == [batch_id]  # what `<domain>_land` does every 10 minutes
    assert storage.get_json(storage.Keys(DOMAIN).manifest(batch_id))["registered_by"] == "scan"


def test_the_safety_net_scan_leaves_the_newest_files_to_their_event(s3):
    landing.land_file(DOMAIN, "fresh.csv", b"f\n1\n")
    assert landing.register_landed(DOMAIN, older_than=timedelta(seconds=60)) == []
    [batch_id] = landing.register_landed(DOMAIN, via="event")
    assert storage.get_json(storage.Keys(DOMAIN).manifest(batch_id))["registered_by"] == "event"
