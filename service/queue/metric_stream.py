"""One Redis Stream per job holds its metric points, in order; the stream id is the public cursor.

The worker appends (XADD), the API reads (XRANGE with an exclusive start), so a poller that passes back the
cursor it was given receives every point exactly once. Event streams read the same cursor with XREAD BLOCK.
"""

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from service.domain.metric_point import MetricPoint
from service.domain.training_config import MAX_TOTAL_BATCHES

# A stream never holds more points than this (XADD MAXLEN, trimmed approximately, so never below it): a safety
# net against a writer gone wrong. A legal job has at most MAX_TOTAL_BATCHES points an attempt, so it loses none;
# of a retried job's earlier attempts, the oldest points go first.
MAX_POINTS = MAX_TOTAL_BATCHES

_FLOAT_FIELDS = ("loss", "accuracy", "elapsed_s", "val_loss", "val_accuracy")
CURSOR_PATTERN = r"^\d{1,19}-\d{1,19}$"  # a stream id, `<attempt>-<batch>`


def stream_key(job_id: str) -> str:
    return f"mnist:metrics:{job_id}"


def append(pipe: Redis, job_id: str, point: MetricPoint, max_points: int = MAX_POINTS) -> None:
    """Queue on ``pipe`` the XADD of ``point`` under its id ``<attempt>-<batch>``, the stream kept to about
    ``max_points`` (Redis refuses an id it already holds, so a resend cannot duplicate a point)."""
    pipe.xadd(
        stream_key(job_id), encode(point), id=f"{point.attempt}-{point.batch}", maxlen=max_points, approximate=True
    )


def encode(point: MetricPoint) -> dict[str, str]:
    return {name: repr(value) for name, value in point.model_dump(exclude_none=True).items()}


def decode(fields: dict[bytes, bytes]) -> MetricPoint:
    values = {key.decode(): value.decode() for key, value in fields.items()}
    return MetricPoint(
        attempt=int(values.get("attempt", 1)),
        batch=int(values["batch"]),
        **{name: float(values[name]) for name in _FLOAT_FIELDS if name in values},
    )


def read(redis: Redis, job_id: str, since: str | None, limit: int) -> tuple[list[tuple[str, MetricPoint]], str]:
    """Points after the cursor ``since`` (all when None), oldest first, and the cursor to pass next time."""
    start = f"({since}" if since else "-"
    entries = redis.xrange(stream_key(job_id), min=start, max="+", count=limit)
    points = [(entry_id.decode(), decode(fields)) for entry_id, fields in entries]
    cursor = points[-1][0] if points else (since or "0-0")
    return points, cursor


async def wait_for(
    redis: AsyncRedis, job_id: str, since: str, wait_s: float, limit: int
) -> list[tuple[str, MetricPoint]]:
    """Points after the cursor ``since`` ("0-0": all), oldest first; when there are none yet, the ones that
    arrive within ``wait_s`` seconds (XREAD BLOCK; 0: do not wait). The writer never waits for such readers."""
    block_ms = max(1, round(wait_s * 1000)) if wait_s > 0 else None  # BLOCK 0 would wait forever
    reply = await redis.xread({stream_key(job_id): since}, count=limit, block=block_ms)
    return [(entry_id.decode(), decode(fields)) for _, entries in reply for entry_id, fields in entries]


def latest_many(redis: Redis, job_ids: list[str]) -> list[MetricPoint | None]:
    """The newest point of each job (None where it has none yet), in one round trip."""
    pipe = redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.xrevrange(stream_key(job_id), count=1)
    return [decode(entries[0][1]) if entries else None for entries in pipe.execute()]
