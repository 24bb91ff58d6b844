"""What operators watch the API with: a request id in the logs, HTTP metrics, and ``GET /metrics``.

The two middlewares are plain ASGI rather than Starlette's ``BaseHTTPMiddleware``: they run in the request's
own task, so the request id they set is seen by everything that logs for the request, uvicorn's access line
included, and a streamed response is timed until its last byte.
"""

import os
import re
import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs
from service.api import prometheus

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is one short printable token: it goes into logs and a response header as is.
_ACCEPTABLE_ID = re.compile(r"[!-~]{1,128}")

router = APIRouter(tags=["observability"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def prometheus_metrics() -> Response:
    """The Prometheus metrics, in the text exposition format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class RequestIdMiddleware:
    """Gives each request an id (the caller's ``X-Request-ID`` or a new one), returned in the same header and
    attached to every log line written while the request is served."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, _REQUEST_ID_KEY)
        request_id = given if given and _ACCEPTABLE_ID.fullmatch(given) else os.urandom(16).hex()
        pair = (_REQUEST_ID_KEY, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), pair]
            await send(message)

        token = logs.request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)


class HttpMetricsMiddleware:
    """Counts and times each request under its route template (``/jobs/{job_id}``), never its raw path: one
    series per route, however many ids are asked for."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped to the server's error handler

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")  # set by the router on the shared scope when a route matched
            template = route.path if route else "unmatched"
            prometheus.observe_http_request(scope["method"], template, status, time.perf_counter() - started)


_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case), read from the raw list: no Headers object per request."""
    for key, value in scope["headers"]:
        if key == name:  # ASGI servers give names in lower case
            return value.decode("latin-1")
    return None
