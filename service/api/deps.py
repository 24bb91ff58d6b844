"""What the routes get by dependency injection: settings and the Redis client, both made once per app."""

from typing import Annotated

from fastapi import Depends, Request
from redis import Redis

from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
