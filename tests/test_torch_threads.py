"""MNIST_TORCH_THREADS: torch's threads per worker; `run` divides the cores among its workers."""

import os

from worker.__main__ import torch_threads


def test_a_worker_alone_uses_every_core_it_may_run_on():
    assert torch_threads(None) == len(os.sched_getaffinity(0))


def test_the_setting_wins():
    assert torch_threads(3) == 3
