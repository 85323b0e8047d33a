"""
# Continuum event-driven landing

Exists only with `CONTINUUM_LANDING_MODE=events`. S3 notifies the SQS queue
`CONTINUUM_LANDING_QUEUE` of every object created under `s3://<bucket>/landing/`; the
asset `continuum_landing_events` watches that queue in the triggerer (`AssetWatcher` with
common-messaging's `MessageQueueTrigger`, scheme `sqs`, connection
`continuum_landing_events`), and each message it receives triggers this DAG:

| task | does |
|---|---|
| `register_announced` | for each domain a message names, registers everything under `landing/<domain>/` as `<domain>_land` does, and emits `<domain>_landed` (through the asset alias `continuum_landed`) while a batch of the domain waits, so `<domain>_decide` starts as soon as this task has run, not at the next scan |

The trigger deletes a message once it has received it. A message that is lost (deleted,
expired, received while the platform was down) only delays its batch: `<domain>_land`
still scans every 10 minutes in this mode and registers whatever is left. Registering
the same file twice, from both paths at once, is safe (`continuum.landing`).

This file only wires: the work is done by `continuum.landing_events`. Parsing it imports
the Amazon provider's SQS trigger (and so boto3), which the watcher needs at parse time;
the domain DAGs stay free of it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetAlias, AssetWatcher, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from continuum import settings
from continuum.specs import load_domains
from continuum_notifier import default_args

ALIAS = AssetAlias("continuum_landed")


def landing_events_asset() -> Asset:
    """The queue as an asset, watched in the triggerer: each received message batch is one asset event."""
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    queue = settings.landing_queue()
    trigger = MessageQueueTrigger(
        scheme="sqs",
        sqs_queue=queue,
        aws_conn_id=settings.LANDING_EVENTS_CONN_ID,  # endpoint and credentials named, never inherited
        max_messages=10,
        wait_time_seconds=10,  # long polling: a message is received as soon as it arrives
        waiter_delay=1,  # the pause after a poll that found nothing
    )
    return Asset(
        name="continuum_landing_events",
        # Named by the queue, not its endpoint: a platform on another port keeps the same asset.
        uri=f"sqs://{queue.rstrip('/').rsplit('/', 1)[-1]}",
        watchers=[AssetWatcher(name="continuum_landing_sqs", trigger=trigger)],
    )


def land_events_dag(domains: list[str]):
    @dag(
        dag_id="continuum_land_events",
        schedule=[landing_events_asset()],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["continuum", "land", "events"],
        default_args=default_args("continuum-platform"),
        doc_md=__doc__
        + "\n\n**When it fails.** Usually S3 is unreachable (check `AWS_ENDPOINT_URL` and credentials); "
        "the batches stay under `landing/` and the next message or `<domain>_land` registers them. "
        "When no run starts at all, check the triggerer's log for the `continuum_landing_sqs` watcher "
        "and the connection `continuum_landing_events`. See `docs/runbook.md`.",
    )
    def land_events():
        @task(outlets=[ALIAS], multiple_outputs=False)
        def register_announced() -> dict:
            """Register the domains the messages name; emit `<domain>_landed` for each with a batch waiting."""
            from continuum import landing, landing_events

            context = get_current_context()
            messages = landing_events.messages_of(context["triggering_asset_events"])
            announced = landing_events.announced_domains(messages, domains)
            outcome = landing_events.register_announced(announced)
            if not outcome:
                raise AirflowSkipException(f"{len(messages)} message(s) announced no new batch of a known domain")
            for domain, ids in outcome.items():
                context["outlet_events"][ALIAS].add(Asset.ref(name=landing.landed_asset_name(domain)), extra=ids)
            return outcome

        register_announced()

    return land_events()


if settings.landing_mode() == "events":
    land_events_dag([spec.name for spec in load_domains()[0]])
