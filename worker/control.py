"""How a running job learns that it must stop: a flag it checks at every batch boundary.

The worker runs jobs in its own process, so RQ's stop-job command and the worker's shutdown signal simply set
this flag; the job then stops cleanly between two batches, its metrics so far already published.
"""

import threading


class JobInterrupted(Exception):
    """Raised by a job that stopped on request; the message says why, `batch` after which batch."""

    def __init__(self, reason: str, batch: int | None = None) -> None:
        super().__init__(reason)
        self.batch = batch


_stop = threading.Event()
_reason = ""


def request_stop(reason: str) -> None:
    global _reason
    _reason = reason
    _stop.set()


def reset() -> None:
    _stop.clear()


def check(batch: int | None = None) -> None:
    """Raise JobInterrupted if a stop was requested since the job started; `batch`: the last one done."""
    if _stop.is_set():
        raise JobInterrupted(_reason, batch)
