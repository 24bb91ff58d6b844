"""A job's life as Server-Sent Events: a `metric` per training batch, `status` on each change, `end` once.

The worker only appends to the job's metric stream; each watcher reads it on its own with XREAD BLOCK, on
the event loop, so a thousand watchers cost the worker nothing and hold no thread while they wait.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from service.api.deps import AsyncRedisDep, RedisDep, SettingsDep
from service.api.routes.jobs import JobId
from service.queue import jobs, metric_stream
from service.schemas.errors import ErrorResponse
from service.schemas.jobs import ENDED, Job
from service.settings import Settings

router = APIRouter(prefix="/jobs", tags=["jobs"])
log = logging.getLogger(__name__)

PAGE = 1000  # points per Redis read: a long job's history goes out in pages, not one huge reply
RETRY_AFTER_S = 10  # when all of MNIST_MAX_EVENT_STREAMS are taken


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        404: {"description": "No such job"},
        503: {
            "model": ErrorResponse,
            "description": "As many event streams are open as `MNIST_MAX_EVENT_STREAMS` allows: retry after the "
            "`Retry-After` header's seconds.",
            "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
        },
    },
)
async def job_events(
    request: Request,
    redis: RedisDep,
    async_redis: AsyncRedisDep,
    settings: SettingsDep,
    job_id: JobId,
    # A string with a default rather than an optional one: the schema of an optional header would admit `null`,
    # which a header cannot carry (it would arrive as the text "null").
    last_event_id: Annotated[
        str,
        Header(
            pattern=metric_stream.CURSOR_PATTERN,
            description="Resume after this metric (browsers send it themselves); `0-0`: from the first.",
        ),
    ] = "0-0",
) -> EventSourceResponse:
    """Follow a job as it trains. Events: `status` first and on each change (`{"status": ...}`), one `metric`
    per training batch (a metric point, its `id` the same cursor as `/metrics`), and `end` (the final job) when
    it has ended, after which the stream closes. A late watcher gets the whole history, then `end`."""
    streams = _open_streams(request)
    streams.take(settings.max_event_streams, job_id)  # before any await: requests at the same moment count too
    try:
        job = await asyncio.to_thread(jobs.get, redis, job_id)  # an unknown job is a 404, before any event
    except BaseException:
        streams.count -= 1
        raise
    events = _follow(redis, async_redis, settings, job, since=last_event_id)
    return _CountedEventSource(streams, events, ping=settings.events_ping_s)


class _OpenStreams:
    """How many event streams this app has open. Only the event loop's thread counts, so no lock is needed."""

    def __init__(self) -> None:
        self.count = 0

    def take(self, limit: int, job_id: str) -> None:
        """One more stream, or a 503 if `limit` are open. A browser's EventSource gives up on a 503 rather than
        reconnect in a loop."""
        if self.count >= limit:
            raise HTTPException(
                503,
                f"too many event streams are open: {self.count}, the most this server keeps open "
                f"({Settings.env_name('max_event_streams')}); retry in {RETRY_AFTER_S} s, or poll /jobs/{job_id}",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.count += 1


def _open_streams(request: Request) -> _OpenStreams:
    state = request.app.state
    if not hasattr(state, "event_streams"):
        state.event_streams = _OpenStreams()
    return state.event_streams


class _CountedEventSource(EventSourceResponse):
    """An event stream that gives its place back when it is over: sent to its end, its client gone
    (sse-starlette then cancels it), or the server shutting down."""

    def __init__(self, streams: _OpenStreams, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._streams.count -= 1


async def _follow(
    redis: Redis, async_redis: AsyncRedis, settings: Settings, job: Job, since: str
) -> AsyncIterator[ServerSentEvent]:
    status, checked_at = job.status, time.monotonic()
    yield _status(status)
    try:
        while True:
            # A worker publishes every point before its job ends, so once the end is seen, what is in the
            # stream is complete: send the rest without waiting, then the end.
            wait_s = 0 if status in ENDED else settings.events_wait_s
            points = await metric_stream.wait_for(async_redis, job.id, since, wait_s, PAGE)
            for entry_id, point in points:
                yield ServerSentEvent(point.model_dump_json(exclude_none=True), event="metric", id=entry_id)
                since = entry_id
            if status in ENDED:
                if len(points) < PAGE:
                    yield ServerSentEvent(job.model_dump_json(), event="end")
                    return
            elif time.monotonic() - checked_at >= settings.events_wait_s:
                job, checked_at = await asyncio.to_thread(jobs.get, redis, job.id), time.monotonic()
                if job.status != status:
                    status = job.status
                    yield _status(status)
    except RedisError as error:  # the client reconnects with Last-Event-ID and misses nothing
        log.warning("event stream of job %s cut short: %s", job.id, error)


def _status(status: str) -> ServerSentEvent:
    payload = {"status": status, "ended": status in ENDED}
    return ServerSentEvent(json.dumps(payload, separators=(",", ":")), event="status")
