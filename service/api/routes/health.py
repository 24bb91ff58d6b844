"""Liveness and readiness probes.

``/healthz`` says the process answers and checks no dependency, so a Redis outage never restarts the API.
``/readyz`` says whether the service can do its work now: Redis answers, the MNIST files are in place, and a
worker is there to train; each check it failed is named in its answer.
"""

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis import Redis
from redis.exceptions import RedisError

from service.api.deps import RedisDep, SettingsDep
from service.domain.mnist import DataError, check_sizes
from service.queue.workers import live_workers
from service.settings import Settings

router = APIRouter(tags=["health"])

OK = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unready"]
    checks: dict[str, str] = Field(description='Each check: "ok", or why it failed.')


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    # `async`: answered on the event loop. A plain `def` would be run in a worker thread, and the hand-off there
    # and back costs more than everything else this answer does.
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
def readyz(redis: RedisDep, settings: SettingsDep) -> JSONResponse:
    """200 when Redis answers, the four MNIST files have their sizes and a worker was seen on the queue; else
    503. Each Redis call is bounded by MNIST_REDIS_TIMEOUT_S, so an outage gives a quick 503, never a hang."""
    checks = {"redis": _redis(redis), "data": _data(settings)}
    checks["workers"] = _workers(redis, settings) if checks["redis"] == OK else "not checked: Redis is unreachable"
    ready = all(outcome == OK for outcome in checks.values())
    answer = Readiness(status="ready" if ready else "unready", checks=checks)
    return JSONResponse(answer.model_dump(), status_code=200 if ready else 503)


def _redis(redis: Redis) -> str:
    try:
        redis.ping()
    except RedisError as error:
        return f"unreachable: {error}"
    return OK


def _data(settings: Settings) -> str:
    try:
        check_sizes(settings.data_dir)
    except DataError as error:
        return str(error)
    return OK


def _workers(redis: Redis, settings: Settings) -> str:
    try:
        alive = live_workers(redis, settings)
    except RedisError as error:
        return f"unreachable: {error}"
    return OK if alive else f"no worker has been seen on queue {settings.queue_name!r}"
