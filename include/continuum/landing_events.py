"""Event-driven landing (`landing.mode: events`): S3 ObjectCreated notifications via SQS.

The bucket notifies one SQS queue of every object created under `landing/`; an Airflow
`AssetWatcher` (common-messaging's `MessageQueueTrigger`, scheme `sqs`) receives the
messages in the triggerer and the `continuum_land_events` DAG hands them here. A message
only says which domains have something new: each named domain's landing prefix is then
scanned and registered as the poll path does (`landing.register_landed`), so messages
that Airflow merged into one run, or that were lost, cost nothing but time, and the
poll DAG (every 10 minutes in this mode) stays the safety net. No Airflow import here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from continuum import batches, landing

log = logging.getLogger(__name__)

LANDING_PREFIX = "landing/"
NOTIFICATION_ID = "continuum-landing"


def created_keys(body: str | Mapping[str, Any]) -> list[str]:
    """The object keys an S3 event notification reports as created (SNS-wrapped bodies too).

    S3's test event (sent when the notification is configured), other event types and
    bodies that are not S3 events give no keys. Keys arrive URL-encoded (`+` for a space).
    """
    try:
        event = json.loads(body) if isinstance(body, str) else dict(body)
    except (TypeError, ValueError):
        return []
    if isinstance(event, dict) and event.get("Type") == "Notification" and "Message" in event:
        return created_keys(event["Message"])  # S3 -> SNS -> SQS fan-out
    if not isinstance(event, dict):
        return []
    keys = []
    for record in event.get("Records") or []:
        if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        key = ((record.get("s3") or {}).get("object") or {}).get("key")
        if isinstance(key, str):
            keys.append(unquote_plus(key))
    return keys


def landed_domain(key: str) -> str | None:
    """`<domain>` of a key `landing/<domain>/<file>`; None for anything else (a folder marker, labels/...)."""
    if not key.startswith(LANDING_PREFIX):
        return None
    domain, _, name = key[len(LANDING_PREFIX):].partition("/")
    return domain if domain and name and not name.endswith("/") else None


def messages_of(triggering_asset_events: Mapping[Any, Iterable[Any]]) -> list[Mapping[str, Any]]:
    """The SQS messages in a run's triggering asset events (`extra.payload.message_batch` of each)."""
    messages: list[Mapping[str, Any]] = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            payload = (getattr(event, "extra", None) or {}).get("payload") or {}
            messages += [m for m in payload.get("message_batch") or [] if isinstance(m, Mapping)]
    return messages


def announced_domains(messages: Iterable[Mapping[str, Any]], known: Iterable[str]) -> list[str]:
    """The known domains the messages announce a landed file for, in first-mention order."""
    known, domains, unknown = set(known), [], set()
    for message in messages:
        for key in created_keys(message.get("Body") or ""):
            domain = landed_domain(key)
            if domain in known and domain not in domains:
                domains.append(domain)
            elif domain and domain not in known:
                unknown.add(domain)
    for domain in sorted(unknown):
        log.warning("event=landing_event_unknown_domain domain=%s action=ignored", domain)
    return domains


def register_announced(domains: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """Register what waits under each domain's landing prefix; per domain with work: new and waiting ids."""
    outcome = {}
    for domain in domains:
        new = landing.register_landed(domain, via="event")
        waiting = batches.pending(domain)
        log.info("event=landing_event_registered domain=%s new=%d waiting=%d", domain, len(new), len(waiting))
        if waiting:
            outcome[domain] = {"new": new, "batch_ids": waiting}
    return outcome


def subscribe(s3, sqs, bucket: str, queue_name: str) -> str:
    """Create the queue (idempotent) and notify it of every object created under `landing/`; its URL.

    For the embedded platform, and a template for AWS (where infrastructure code usually owns
    this): the queue policy lets only this bucket's S3 notifications in. The bucket's
    notification configuration is replaced as a whole, as S3's API does.
    """
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
        }],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{
                "Id": NOTIFICATION_ID,
                "QueueArn": arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": LANDING_PREFIX}]}},
            }]
        },
    )
    log.info("event=landing_events_subscribed bucket=%s queue=%s", bucket, url)
    return url
