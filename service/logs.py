"""Logs as one JSON object per line, the same from the API and the worker, for log collectors to parse.

Every line has ``time``, ``level``, ``logger`` and ``message``; a line written while the API serves a request
has its ``request_id``, and a line written by a training job its ``job_id``, so one request or one job can be
followed through the logs.
"""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from rq import get_current_job

# Set by the API's request-id middleware for the time of one request; asyncio tasks and the threads that run
# sync routes inherit it, so every line logged on the request's behalf carries it.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``job_id`` to a record where they are known."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        job = get_current_job()  # RQ's own: set while a job's function runs
        record.job_id = job.id if job else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("request_id", "job_id"):
            if getattr(record, field, None):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str) -> None:
    """Send every logger's records (ours, uvicorn's, RQ's) as JSON lines to stderr, from ``level`` up.

    Only the root logger gets a handler: uvicorn (started without a log config) and RQ (which adds handlers
    only where none are in effect) then propagate to it, and nothing is printed twice.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # Python's warnings too, as records of the logger "py.warnings"
