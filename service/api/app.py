"""The HTTP side: ``create_app()`` builds the FastAPI application."""

import asyncio
import gc
import math
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import REGISTRY
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

import service
from service.api import observability
from service.api.limits import BodySizeLimit
from service.api.observability import HttpMetricsMiddleware, RequestIdMiddleware
from service.api.prometheus import TrainingCollector
from service.api.reaper import reap_abandoned_jobs
from service.api.routes import dashboard, docs, events, health, jobs, models, predict, presets, samples, v2
from service.api.security import ApiKeyGate, key_dependencies
from service.domain.model_store import ModelNotFound
from service.queue.connection import async_redis_client, redis_client
from service.queue.jobs import JobConflict, JobNotFound, QueueFull
from service.serving.inference import Batcher, ModelCache, NoDefaultModel
from service.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not settings.redis_url:
        raise RuntimeError("MNIST_REDIS_URL is not set: point the API at Redis (`mnist-service run` sets it for you)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One pool for the process. The timeouts bound every call, so an outage gives a 503, never a hang.
        app.state.redis = redis_client(settings)
        # Event streams wait on Redis without a thread; each wait is bounded by events_wait_s.
        app.state.async_redis = async_redis_client(
            settings, blocks_for_s=settings.events_wait_s, max_connections=settings.max_event_streams
        )
        reaper = asyncio.create_task(reap_abandoned_jobs(app.state.redis, settings))
        # The Redis-derived metrics, read at each scrape of /metrics. One app per process: the registry is global.
        collector = TrainingCollector(app.state.redis, settings)
        REGISTRY.register(collector)
        # What the imports made (torch's objects are many) lives as long as the process: out of the collector's
        # sight, a full collection takes a few ms instead of ~150, which would stall every request in flight.
        gc.freeze()
        yield
        gc.unfreeze()
        REGISTRY.unregister(collector)
        reaper.cancel()
        app.state.redis.close()
        await app.state.async_redis.aclose()

    app = FastAPI(
        title="mnist-service",
        version=service.__version__,
        description="Train the TensorFlow.js tutorial's handwritten-digit CNN through a job queue, and serve it.",
        lifespan=lifespan,
        docs_url=None,  # /docs is service.api.routes.docs: Swagger UI served from here, not from a CDN
        redoc_url=None,  # ReDoc's page fetches its logo from a CDN
    )
    app.state.settings = settings
    app.state.models = ModelCache(settings.model_dir, settings.model_cache_size)
    app.state.batcher = Batcher(max_images=settings.max_batch, threads=settings.inference_threads)
    app.add_middleware(ApiKeyGate, key=settings.api_key)  # innermost: a body without the key is never read
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_json_body_bytes)  # the routes that take more say so
    app.add_middleware(HttpMetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)  # added last, so outermost: every log line of a request has its id
    if settings.cors_origins:  # off unless configured: browsers on other origins get no access
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=True,
        )
    # Probes and scrapers carry no key; the page itself holds no data (its requests carry the key).
    app.include_router(health.router)
    app.include_router(observability.router)
    app.include_router(dashboard.router)
    app.include_router(docs.router)
    app.include_router(v2.probes)
    for resource in (jobs, models, predict, events, presets, samples, v2):
        app.include_router(resource.router, dependencies=key_dependencies(settings.api_key))
    app.mount("/dashboard", dashboard.static_files, name="dashboard")
    app.mount(docs.ASSETS_URL, docs.static_files, name="docs-assets")

    # The domain's errors carry messages for the user; each kind has its status.
    for error_class, status_code in (
        (JobNotFound, 404),
        (ModelNotFound, 404),
        (NoDefaultModel, 409),
        (JobConflict, 409),
    ):
        app.add_exception_handler(error_class, _answer_with(status_code))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, error: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=429, headers={"Retry-After": str(error.retry_after_s)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        # Starlette's `Allow` names only the methods of the first route at the path (e.g. POST of /jobs, not GET).
        if error.status_code == 405 and (methods := _methods_at(app, request.scope)):
            error.headers = {**(error.headers or {}), "Allow": ", ".join(methods)}
        return await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": [_answerable(problem) for problem in error.errors()]}, status_code=422)

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, error: RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis is unavailable: {error}"}, status_code=503)

    return app


def _methods_at(app: FastAPI, scope: Scope) -> list[str]:
    """Every method that a route at the request's path answers: what a 405's `Allow` must list."""
    return [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in app.router.routes)
    ]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _answerable(problem: dict) -> dict:
    """One of FastAPI's validation problems, safe to send back. A list or object that the client sent is not
    echoed: it may be as large as the body limit allows, and writing it would hold the event loop as long as
    parsing it did. A number that JSON has no word for (Python's json reads 1e400 as inf, and accepts NaN)
    is echoed as the word JSON parsers take for it, as a string, where it would have made the answer a 500."""
    bulky = isinstance(problem.get("input"), dict | list)
    problem = jsonable_encoder({key: value for key, value in problem.items() if not (bulky and key == "input")})
    value = problem.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        problem["input"] = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    return problem


def _answer_with(status_code: int):
    async def handler(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status_code)

    return handler
