"""Landing registers each file once, by content, and never loses one."""

from __future__ import annotations

from continuum import landing
from continuum.storage import Keys

DOMAIN = "insurance_claim_risk"


def test_landed_file_becomes_a_batch_with_manifest(s3):
    key = landing.land_file(DOMAIN, "/tmp/batch-1.csv", b"a,b\n1,2\n")
    [batch_id] = landing.register_landed(DOMAIN)
    keys = Keys(DOMAIN)
    manifest = s3.get_json(keys.manifest(batch_id))
    assert manifest["source_key"] == key and manifest["extension"] == ".csv"
    assert s3.get_bytes(manifest["raw_key"]) == b"a,b\n1,2\n"
    assert s3.list_keys(keys.landing) == []


def test_same_bytes_twice_is_one_batch_and_the_copy_is_kept(s3):
    keys = Keys(DOMAIN)
    landing.land_file(DOMAIN, "first.csv", b"x\n1\n")
    [batch_id] = landing.register_landed(DOMAIN)
    s3.put_json(keys.validation_report(batch_id), {"success": True})  # the gate has seen it
    landing.land_file(DOMAIN, "again.csv", b"x\n1\n")
    assert landing.register_landed(DOMAIN) == []
    duplicates = s3.list_keys(keys.batch(batch_id) + "duplicates/")
    assert len(duplicates) == 1 and duplicates[0].endswith("again.csv")
    assert s3.get_bytes(duplicates[0]) == b"x\n1\n"


def test_interrupted_registration_is_finished_on_the_next_scan(s3):
    keys = Keys(DOMAIN)
    landing.land_file(DOMAIN, "b.csv", b"y\n2\n")
    [batch_id] = landing.register_landed(DOMAIN)
    # As if the scan died after the manifest but before removing the landing object:
    landing.land_file(DOMAIN, "b.csv", b"y\n2\n")
    assert landing.register_landed(DOMAIN) == [batch_id]
    assert s3.list_keys(keys.landing) == []
    assert s3.list_keys(keys.batch(batch_id) + "duplicates/") == []


def test_distinct_files_get_distinct_ids(s3):
    landing.land_file(DOMAIN, "one.parquet", b"1")
    landing.land_file(DOMAIN, "two.parquet", b"2")
    ids = landing.register_landed(DOMAIN)
    assert len(ids) == 2 and len(set(ids)) == 2


def test_registered_batches_wait_in_the_queue_in_arrival_order_until_dequeued(s3):
    from continuum import batches

    landing.land_file(DOMAIN, "one.csv", b"1")
    landing.land_file(DOMAIN, "two.csv", b"2")
    first, second = landing.register_landed(DOMAIN)
    assert batches.pending(DOMAIN) == [first, second]
    assert batches.next_batch(DOMAIN) == first and batches.next_batch(DOMAIN, among=[second]) == second
    batches.dequeue(DOMAIN, first)
    assert batches.pending(DOMAIN) == [second]


def test_a_scan_that_died_before_queueing_queues_the_batch_next_time(s3):
    from continuum import batches

    landing.land_file(DOMAIN, "c.csv", b"z\n3\n")
    [batch_id] = landing.register_landed(DOMAIN)
    batches.dequeue(DOMAIN, batch_id)  # as if the scan died after the manifest, before the marker
    landing.land_file(DOMAIN, "c.csv", b"z\n3\n")
    assert landing.register_landed(DOMAIN) == [batch_id]
    assert batches.pending(DOMAIN) == [batch_id]


def test_batch_ids_are_checked_before_they_reach_a_key():
    import pytest

    from continuum import batches, decision

    assert batches.check_batch_id("0123456789abcdef") == "0123456789abcdef"
    for bad in ("../etc/passwd", "0123456789ABCDEF", "x' or '1'='1", ""):
        with pytest.raises(ValueError, match="16 hex digits"):
            batches.check_batch_id(bad)
    with pytest.raises(ValueError, match="16 hex digits"):
        decision.load(DOMAIN, "../../models/x")
