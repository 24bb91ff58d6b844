"""What the routes get by dependency injection: settings and the Redis clients, all made once per app.

Each is `async def`, though none waits on anything: FastAPI calls a plain `def` dependency in a worker thread,
and that hand-off, for every dependency of every request, would cost more than the rest of a small request.
"""

from typing import Annotated

from fastapi import Depends, Request
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from service.serving.inference import Batcher, ModelCache
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


async def get_async_redis(request: Request) -> AsyncRedis:
    """For waits that must not hold a thread: event streams block on Redis for new points."""
    return request.app.state.async_redis


async def get_model_cache(request: Request) -> ModelCache:
    return request.app.state.models


async def get_batcher(request: Request) -> Batcher:
    return request.app.state.batcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
AsyncRedisDep = Annotated[AsyncRedis, Depends(get_async_redis)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
