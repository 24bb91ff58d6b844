"""The HTTP side: ``create_app()`` builds the FastAPI application."""

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis import Redis
from redis.exceptions import RedisError

import service
from service.api import health, jobs
from service.api.reaper import reap_abandoned_jobs
from service.jobs import JobConflict, JobNotFound
from service.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not settings.redis_url:
        raise RuntimeError("MNIST_REDIS_URL is not set: point the API at Redis (`mnist-service run` sets it for you)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One pool for the process. The timeouts bound every call, so an outage gives a 503, never a hang.
        app.state.redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            health_check_interval=30,
        )
        reaper = asyncio.create_task(reap_abandoned_jobs(app.state.redis, settings))
        yield
        reaper.cancel()
        app.state.redis.close()

    app = FastAPI(
        title="mnist-service",
        version=service.__version__,
        description="Train the TensorFlow.js tutorial's handwritten-digit CNN through a job queue, and serve it.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(health.router)
    app.include_router(jobs.router)

    @app.exception_handler(JobNotFound)
    async def not_found(request: Request, error: JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(JobConflict)
    async def conflict(request: Request, error: JobConflict) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, error: RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis is unavailable: {error}"}, status_code=503)

    return app
