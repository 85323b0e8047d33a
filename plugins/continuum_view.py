"""The "Continuum" page inside the Airflow UI: an Airflow 3 plugin with a FastAPI app.

Airflow's API server mounts `app` at `/continuum` (`fastapi_apps`) and the UI lists
it in the navigation as an external view with a `url_route`, shown in the UI's frame
at `/plugin/continuum`. Routes:

    GET /continuum/                                  the page (continuum.overview_page)
    GET /continuum/reports/<domain>/<batch_id>/drift        batches/<domain>/<batch_id>/drift.html
    GET /continuum/reports/<domain>/<batch_id>/validation   batches/<domain>/<batch_id>/validation.json
    GET /continuum/icon.svg                          the navigation icon

Airflow does not authenticate plugin apps, so every route but the icon asks Airflow's
own auth manager (the session cookie the UI sets, or a bearer token) whether the
caller may see the UI. A report is found by a known domain name and a batch id that
passes `batches.check_batch_id`, and its key is built by `storage.Keys`: no request
reaches S3 with a path of its own. The page allows no script (Content-Security-Policy);
an Evidently drift report, which needs its scripts, is served sandboxed (an origin of
its own, so its scripts cannot act as the signed-in user).

Only FastAPI is imported here (the API server has it loaded): Continuum, boto3, MLflow
and Airflow's security module are imported inside the routes, so the scheduler and the
workers that also import plugins pay nothing for the page.
"""

from __future__ import annotations

import logging
import time

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

log = logging.getLogger("continuum.view")

URL_PREFIX = "/continuum"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
REPORT_TYPES = {"drift": "text/html; charset=utf-8", "validation": "application/json"}
# An HTML report runs its own scripts in a sandbox: no access to the Airflow origin or its cookie.
SANDBOXED = {"Content-Security-Policy": "sandbox allow-scripts; frame-ancestors 'self'"}
ICON = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' stroke='#017cee' stroke-width='2'>"
    "<path d='M3 17l5-5 4 4 8-8'/><path d='M14 8h6v6'/></svg>"
)


async def signed_in(request: Request) -> None:
    """Airflow's own check: a valid session cookie or bearer token, allowed to see the UI."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    user = await get_user(request, None, await bearer_scheme(request))
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status_code=403, detail="this user may not see the Airflow UI, so not the Continuum page")


app = FastAPI(title="Continuum", docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/", response_class=HTMLResponse, dependencies=[Depends(signed_in)])
def page() -> HTMLResponse:
    """The whole page, built fresh on every request (a sync route: FastAPI runs it in a thread)."""
    from continuum import overview, overview_page

    started = time.monotonic()
    try:
        built = overview.build()
    except Exception as exc:  # a bug, not an outage (overview degrades on those): say so, log the traceback
        log.exception("event=continuum_page_failed")
        message = f"The Continuum page could not be built ({type(exc).__name__}: {exc}); see the api-server log."
        return HTMLResponse(overview_page.error_page(message), status_code=500, headers=PAGE_HEADERS)
    body = overview_page.page(built)
    unavailable = sorted({line for view in (*built.domains, *built.assistants) for line in view.unavailable})
    log.info(
        "event=continuum_page domains=%d assistants=%d unavailable=%d seconds=%.2f",
        len(built.domains), len(built.assistants), len(unavailable), time.monotonic() - started,
    )
    return HTMLResponse(body, headers=PAGE_HEADERS)


@app.get("/reports/{domain}/{batch_id}/{kind}", dependencies=[Depends(signed_in)])
def report(domain: str, batch_id: str, kind: str) -> Response:
    """One stored report of one batch, streamed from S3."""
    from botocore.exceptions import ClientError

    from continuum import batches, outages, specs, storage
    from continuum.storage import Keys

    if kind not in REPORT_TYPES:
        raise HTTPException(status_code=404, detail=f"no report '{kind}'; use one of: {', '.join(REPORT_TYPES)}")
    try:
        batches.check_batch_id(batch_id)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    if domain not in {spec.name for spec in specs.load_domains()[0]}:
        raise HTTPException(status_code=404, detail=f"unknown domain '{domain}'; see the Continuum page for the domains")
    keys = Keys(domain)
    key = keys.drift_report(batch_id) if kind == "drift" else keys.validation_report(batch_id)
    try:
        chunks = storage.stream(key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise HTTPException(
                status_code=404, detail=f"batch {batch_id} of {domain} has no {kind} report (yet): {storage.uri(key)}"
            ) from exc
        raise
    except Exception as exc:
        message = outages.describe(exc)
        if message is None:
            raise
        log.warning("event=continuum_report_unavailable domain=%s batch=%s kind=%s error=%s", domain, batch_id, kind, message)
        return PlainTextResponse(message, status_code=503)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    headers |= SANDBOXED if kind == "drift" else {"Content-Security-Policy": "default-src 'none'"}
    return StreamingResponse(chunks, media_type=REPORT_TYPES[kind], headers=headers)


@app.get("/icon.svg")
def icon() -> Response:
    return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


class ContinuumViewPlugin(AirflowPlugin):
    """Mounts the page and links it in the UI's navigation."""

    name = "continuum_view"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Continuum"}]
    external_views = [
        {
            "name": "Continuum",
            # Relative to the UI's base URL, so a deployment under a path prefix works too.
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "url_route": "continuum",
            "destination": "nav",
            "icon": f"{URL_PREFIX.lstrip('/')}/icon.svg",
        }
    ]
