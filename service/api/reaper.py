"""The API's one background task: fail (or retry) jobs whose worker died, on a short period."""

import asyncio
import logging

from redis import Redis
from redis.exceptions import RedisError

from service.queue import jobs
from service.settings import Settings

log = logging.getLogger(__name__)


async def reap_abandoned_jobs(redis: Redis, settings: Settings) -> None:
    """Runs until cancelled. A dead worker's job is failed within 3 heartbeats + one period."""
    while True:
        await asyncio.sleep(settings.heartbeat_s)
        try:
            await asyncio.to_thread(jobs.fail_abandoned, redis, settings)
        except RedisError as error:  # Redis away: try again next period
            log.warning("could not check for abandoned jobs: %s", error)
