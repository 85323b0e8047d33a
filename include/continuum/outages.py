"""Tell "a service is down" apart from every other error, and say so in one line.

A task lets these errors fail it (Airflow retries it with backoff; an error is not an
absence). The CLI checks MLflow and S3 before it starts work and turns an outage into
one line on stderr, so the user learns in seconds, not after every retry has run out.
The bounds on each client's retries and timeouts are in `settings.CLIENT_ENV`.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class ServiceUnreachable(RuntimeError):
    """MLflow or S3 did not answer within the configured retries and timeouts."""


def mlflow_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def s3_endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "the AWS S3 endpoint"


def mlflow_message() -> str:
    return f"MLflow at {mlflow_uri()} is unreachable: start it or set MLFLOW_TRACKING_URI"


def s3_message() -> str:
    return f"S3 at {s3_endpoint()} is unreachable: start it or set AWS_ENDPOINT_URL"


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def describe(exc: BaseException) -> str | None:
    """The one-line outage message for `exc` (or anything it was raised from), else None."""
    import requests
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    for link in _chain(exc):
        if isinstance(link, ServiceUnreachable):
            return str(link)
        # botocore talks to S3 through urllib3 directly; only MLflow's client uses requests.
        if isinstance(link, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError):
            return s3_message()
        if isinstance(link, requests.ConnectionError | requests.Timeout):
            return mlflow_message()
    return None


def check_s3() -> None:
    """Raise ServiceUnreachable unless the S3 endpoint answers (any answer, even 'no such bucket')."""
    from botocore.exceptions import ClientError

    from continuum import settings, storage

    try:
        storage.client().list_objects_v2(Bucket=settings.bucket(), MaxKeys=1)
    except ClientError:
        pass  # no such bucket, access denied: the endpoint answered, the command reports the rest
    except Exception as exc:
        if describe(exc):
            raise ServiceUnreachable(s3_message()) from exc
        raise


def check_mlflow() -> None:
    """Raise ServiceUnreachable unless the MLflow tracking server answers one cheap request."""
    import mlflow

    try:
        mlflow.MlflowClient().search_experiments(max_results=1)
    except Exception as exc:
        if describe(exc):
            raise ServiceUnreachable(mlflow_message()) from exc
        raise


def check_services() -> None:
    """Both checks, S3 first (it also holds MLflow's artefacts)."""
    check_s3()
    check_mlflow()
    log.info("event=services_reachable mlflow=%s s3=%s", mlflow_uri(), s3_endpoint())
