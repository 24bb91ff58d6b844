"""Logs are JSON lines, and a line carries the id of the request or the job it was written for."""

import io
import json
import logging

import pytest
from rq.job import Job

from service.logs import request_id, setup_logging


def log_a_line() -> None:
    """A job's function: RQ runs it below, in this process."""
    logging.getLogger("worker.task").info("training batch %d", 7)


@pytest.fixture
def json_lines():
    """setup_logging() for one test, its handler writing into a buffer; gives the lines written so far."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("INFO")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_a_line_has_time_level_logger_and_message(json_lines):
    logging.getLogger("service.queue.jobs").warning("Redis is %s", "away")
    logging.getLogger("service.queue.jobs").debug("below the level")
    (line,) = json_lines()
    assert line["level"] == "WARNING" and line["logger"] == "service.queue.jobs" and line["message"] == "Redis is away"
    assert line["time"].endswith("+00:00") and "request_id" not in line and "job_id" not in line


def test_an_exception_is_kept_in_the_same_line(json_lines):
    try:
        raise ValueError("bad batch")
    except ValueError:
        logging.getLogger("worker").exception("job failed")
    (line,) = json_lines()
    assert line["message"] == "job failed" and "ValueError: bad batch" in line["exception"]


def test_a_line_written_during_a_request_has_its_id(json_lines):
    token = request_id.set("req-42")
    try:
        logging.getLogger("uvicorn.access").info("GET /jobs 200")
    finally:
        request_id.reset(token)
    logging.getLogger("uvicorn.access").info("after the request")
    during, after = json_lines()
    assert during["request_id"] == "req-42" and "request_id" not in after


def test_a_line_written_by_a_job_has_its_id(json_lines, redis):
    job = Job.create(log_a_line, connection=redis)
    job.perform()  # as a worker runs it, in-process
    (line,) = json_lines()
    assert line["job_id"] == job.id and line["message"] == "training batch 7"


def test_warnings_become_lines_too(json_lines):
    import warnings

    warnings.warn("deprecated thing", stacklevel=2)
    (line,) = json_lines()
    assert line["logger"] == "py.warnings" and "deprecated thing" in line["message"]
