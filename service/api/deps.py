"""What the routes get by dependency injection: settings and the Redis clients, all made once per app."""

from typing import Annotated

from fastapi import Depends, Request
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from service.serving.inference import Batcher, ModelCache
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


def get_async_redis(request: Request) -> AsyncRedis:
    """For waits that must not hold a thread: event streams block on Redis for new points."""
    return request.app.state.async_redis


def get_model_cache(request: Request) -> ModelCache:
    return request.app.state.models


def get_batcher(request: Request) -> Batcher:
    return request.app.state.batcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
AsyncRedisDep = Annotated[AsyncRedis, Depends(get_async_redis)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
