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

from fastapi import APIRouter, Header
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.api.deps import AsyncRedisDep, RedisDep, SettingsDep
from service.api.routes.jobs import JobId
from service.queue import jobs, metric_stream
from service.schemas.jobs import ENDED, Job
from service.settings import Settings

router = APIRouter(prefix="/jobs", tags=["jobs"])
log = logging.getLogger(__name__)

PAGE = 1000  # points per Redis read: a long job's history goes out in pages, not one huge reply


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        404: {"description": "No such job"},
    },
)
async def job_events(
    redis: RedisDep,
    async_redis: AsyncRedisDep,
    settings: SettingsDep,
    job_id: JobId,
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=metric_stream.CURSOR_PATTERN, description="Resume after this metric (browsers send it themselves)."
        ),
    ] = None,
) -> EventSourceResponse:
    """Follow a job as it trains. Events: `status` first and on each change (`{"status": ...}`), one `metric`
    per training batch (a metric point, its `id` the same cursor as `/metrics`), and `end` (the final job) when
    it has ended, after which the stream closes. A late watcher gets the whole history, then `end`."""
    job = await asyncio.to_thread(jobs.get, redis, job_id)  # an unknown job is a 404, before any event
    events = _follow(redis, async_redis, settings, job, since=last_event_id or "0-0")
    return EventSourceResponse(events, ping=settings.events_ping_s)


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
    return ServerSentEvent(json.dumps({"status": status}, separators=(",", ":")), event="status")
