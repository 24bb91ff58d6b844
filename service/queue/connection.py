"""Redis clients, made one way for every process, so that an outage is an error within a known bound."""

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.settings import Settings

# A connection idle this long is checked with a PING before it is used again (a Redis restart closes them).
HEALTH_CHECK_INTERVAL_S = 30


def redis_client(settings: Settings, *, blocks_for_s: float = 0) -> Redis:
    """A client whose every call gives up after ``MNIST_REDIS_TIMEOUT_S`` (plus ``blocks_for_s`` for a client
    that makes blocking calls, e.g. RQ's worker waiting for a job), with one retry, no backoff: redis-py's
    default of three retries would make the bound four times the timeout."""
    return Redis.from_url(
        _url(settings),
        socket_timeout=settings.redis_timeout_s + blocks_for_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        retry=Retry(NoBackoff(), 1),
    )


def async_redis_client(
    settings: Settings, *, blocks_for_s: float = 0, max_connections: int | None = None
) -> AsyncRedis:
    """The same for waits that must not hold a thread (event streams block on Redis for new points, each on a
    connection of its own: ``max_connections`` must cover as many as may be open)."""
    return AsyncRedis.from_url(
        _url(settings),
        max_connections=max_connections,
        socket_timeout=settings.redis_timeout_s + blocks_for_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
    )


def _url(settings: Settings) -> str:
    if not settings.redis_url:
        raise RuntimeError("MNIST_REDIS_URL is not set: point this process at Redis (`mnist-service run` sets it)")
    return settings.redis_url
