"""How a running job learns that it must stop: a flag, and the job's deadline, checked at every batch boundary.

The worker runs jobs in its own process, so RQ's stop-job command and the worker's shutdown signal simply set
this flag; the job then stops cleanly between two batches, its metrics so far already published.

The deadline is the job's timeout. RQ's own (a SIGALRM) raises only once the interpreter runs Python again, and a
long native operation (one huge batch) keeps it waiting; the check here does not depend on a signal being
delivered, and both say the same thing to the user.
"""

import threading
import time


class JobInterrupted(Exception):
    """Raised by a job that stopped on request; the message says why, `batch` after which batch."""

    def __init__(self, reason: str, batch: int | None = None) -> None:
        super().__init__(reason)
        self.batch = batch


_stop = threading.Event()
_reason = ""
_deadline: float | None = None  # time.monotonic() past which the job is stopped
_timeout_s: float | None = None
_last_batch: int | None = None


def request_stop(reason: str) -> None:
    global _reason
    _reason = reason
    _stop.set()


def reset() -> None:
    global _deadline, _timeout_s, _last_batch
    _stop.clear()
    _deadline = _timeout_s = _last_batch = None


def start_deadline(timeout_s: float | None) -> None:
    """The job must end within ``timeout_s`` seconds from now (None or <= 0: no limit, as RQ reads it)."""
    global _deadline, _timeout_s
    if timeout_s is not None and timeout_s > 0:
        _timeout_s, _deadline = timeout_s, time.monotonic() + timeout_s
    else:
        _timeout_s = _deadline = None


def timed_out() -> JobInterrupted:
    """The error of a job stopped by its timeout, after the last batch it finished."""
    where = f"at batch {_last_batch}" if _last_batch is not None else "before its first batch"
    timeout = f" of {_timeout_s:g} s" if _timeout_s is not None else ""
    return JobInterrupted(f"stopped after the job timeout{timeout} {where}", _last_batch)


def check(batch: int | None = None) -> None:
    """Raise JobInterrupted if a stop was requested since the job started, or its deadline has passed; `batch`:
    the last one done."""
    global _last_batch
    if batch is not None:
        _last_batch = batch
    if _stop.is_set():
        raise JobInterrupted(_reason, batch)
    if _deadline is not None and time.monotonic() >= _deadline:
        raise timed_out()
