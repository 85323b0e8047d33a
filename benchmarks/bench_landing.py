"""Landing cost: registering a landed CSV batch against one plain boto3 put_object of its bytes.

Both sides talk to a moto S3 server started in the worker process on a free port
(as tests/conftest.py does), so the numbers include HTTP and moto's own storage but
no network. `landing.register` reads the landed object back, hashes it, writes the
raw copy and the manifest, and deletes the landing key: the reference is the one
write every landing needs anyway, so the ratio is what idempotent registration costs.
"""

from __future__ import annotations

from contextlib import contextmanager

from benchmarks import (
    DOMAIN,
    REPEATS,
    WARM_UP,
    Comparison,
    Side,
    Sizes,
    environ,
    free_port,
    insurance_csv,
    ratio,
    times,
)

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "CONTINUUM_BUCKET": "continuum-bench",
}


@contextmanager
def moto_s3():
    """A moto S3 endpoint for the `with` block; the environment and boto3 client are restored after."""
    from moto.server import ThreadedMotoServer

    from continuum import storage

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with environ({**_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}):
            storage.client.cache_clear()
            try:
                storage.ensure_bucket()
                yield storage
            finally:
                storage.client.cache_clear()
    finally:
        server.stop()


@contextmanager
def register_batch(rows: int):
    from continuum import landing

    data = insurance_csv(rows)
    with moto_s3():
        landing.register(DOMAIN, landing.land_file(DOMAIN, "warm_up.csv", data[:WARM_UP]))
        # One landed copy per timed run; i trailing newlines make each a new batch (a new hash).
        keys = [landing.land_file(DOMAIN, f"claims_{rows}_{i}.csv", data + b"\n" * i) for i in range(REPEATS)]

        def run() -> dict:
            batch_id = landing.register(DOMAIN, keys.pop(0))
            return {"registered": batch_id is not None, "bytes": len(data)}

        yield run


@contextmanager
def put_object(rows: int):
    import boto3

    from continuum import settings

    data = insurance_csv(rows)
    with moto_s3():
        client = boto3.client("s3")
        client.put_object(Bucket=settings.bucket(), Key="plain/warm_up.csv", Body=data[:WARM_UP])

        runs = iter(range(REPEATS))

        def run() -> dict:
            client.put_object(
                Bucket=settings.bucket(), Key=f"plain/claims_{rows}_{next(runs)}.csv", Body=data
            )
            return {"bytes": len(data)}

        yield run


def _meaning(s: dict, r: dict) -> str:
    megabytes = s["facts"]["bytes"] / 1e6
    return (
        f"Registering a {megabytes:.0f} MB batch takes {times(ratio(s, r), 1)} the time and "
        f"{times(ratio(s, r, 'peak_mb'), 1)} the peak memory of one put_object ({s['seconds']:.2f} s vs "
        f"{r['seconds']:.2f} s): it downloads the landed file, hashes it for the batch id and uploads it "
        "again, the price of idempotent registration; on a real S3 endpoint both sides scale with bandwidth."
    )


def comparisons(sizes: Sizes) -> list[Comparison]:
    rows = {"rows": sizes.rows}
    return [
        Comparison(
            case="landing",
            name="landing: register vs put_object",
            rows=sizes.rows,
            subject=Side("continuum.landing.register", "benchmarks.bench_landing:register_batch", rows),
            reference=Side("boto3 put_object", "benchmarks.bench_landing:put_object", rows),
            meaning=_meaning,
            notes="moto S3 server in the worker process (its memory counts on both sides)",
        )
    ]
