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
