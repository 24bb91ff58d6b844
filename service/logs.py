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

# Set by the API's request-id middleware for the time of one request; asyncio tasks and the threads that run
# sync routes inherit it, so every line logged on the request's behalf carries it.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``job_id`` to a record where they are known."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Imported here, not at the top: the CLI logs through this module too, and RQ (with redis-py) is a quarter
        # of its start-up time; the API and the worker have it loaded already.
        from rq import get_current_job

        record.request_id = request_id.get()
        job = get_current_job()  # RQ's own: set while a job's function runs
        record.job_id = job.id if job else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record. The API writes one for every request (uvicorn's access line), so this is kept
    cheap: one encoder made once, and the time's text made once a second."""

    _encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False) makes one per call

    def __init__(self) -> None:
        super().__init__()
        self._second, self._second_text = -1, ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # a race here only makes the same text twice
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("request_id", "job_id"):
            if getattr(record, field, None):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encode(entry)


def setup_logging(level: str) -> None:
    """Send every logger's records (ours, uvicorn's, RQ's) as JSON lines to stderr, from ``level`` up.

    Only the root logger gets a handler: uvicorn (started without a log config) and RQ (which adds handlers
    only where none are in effect) then propagate to it, and nothing is printed twice.
    """
    # What a record would otherwise gather and no line shows: the caller's file and line (a walk up the stack),
    # the thread's, process's and task's names.
    logging._srcfile = None  # documented in the logging module: "Setting _srcfile to None will prevent findCaller()"
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # Python 3.12+
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # Python's warnings too, as records of the logger "py.warnings"
