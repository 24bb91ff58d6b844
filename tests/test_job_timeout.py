"""The job timeout stops a job, between two batches whatever RQ's alarm does, with a message that says so."""

import re
import time

from service.domain.model_store import list_models
from service.domain.training_config import TrainingConfig
from service.queue import jobs
from tests.helpers import wait_for_job, wait_until
from worker import control


def test_the_deadline_is_checked_at_every_batch_boundary():
    control.reset()
    try:
        control.start_deadline(0.05)
        control.check(1)  # within the timeout
        started = time.monotonic()

        def stopped() -> control.JobInterrupted | None:
            try:
                control.check(7)
            except control.JobInterrupted as error:
                return error
            return None

        error = wait_until(stopped, 5, "the deadline passed")
        assert time.monotonic() - started < 5
        assert str(error) == "stopped after the job timeout of 0.05 s at batch 7" and error.batch == 7
        control.reset()  # the next job starts without the last one's deadline
        control.check(8)
        control.start_deadline(-1)  # RQ's "no timeout"
        control.check(9)
    finally:
        control.reset()


def test_a_job_past_its_timeout_fails_saying_so_and_saves_nothing(service, redis):
    # As if MNIST_JOB_TIMEOUT_S were 3 (its lower bound is 10, too long to wait for here).
    settings = service.settings.model_copy(update={"job_timeout_s": 3})
    job = jobs.submit(redis, settings, TrainingConfig(train_batches=100_000, test_every=1000, seed=1))
    started = time.monotonic()
    with service.client() as client:
        ended = wait_for_job(client, job.id, timeout=120)
    assert ended["status"] == "failed", ended
    match = re.fullmatch(r"stopped after the job timeout of 3 s at batch (\d+)", ended["error"])
    assert match, ended["error"]
    assert 0 < int(match[1]) < 100_000
    assert time.monotonic() - started < 60
    assert not [m for m in list_models(service.model_dir) if m.job_id == job.id]
