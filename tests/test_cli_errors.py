"""The command line as part of a pipeline: a reader that stops early (`mnist-service models | head -3`) ends
the command quietly, with SIGPIPE's conventional status, never a traceback."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.schemas.models import DefaultModel, ModelList, ModelSummary
from tests.helpers import ROOT, cli
from tests.stub_server import stub_server

# Far more output than a pipe holds (64 KiB on Linux): the command is still writing when the reader is gone.
MODELS = 5000


def model_listing() -> bytes:
    created_at = datetime(2024, 1, 1, tzinfo=UTC)
    models = [
        ModelSummary(
            id=f"20240101T000000Z-{index:06d}",
            job_id=None,
            created_at=created_at,
            test_accuracy=0.98,
            parameters=5994,
            summary=f"conv 8-16 5x5 valid, dense 10; sgd 0.15, {index} batches of 64",
        )
        for index in range(MODELS)
    ]
    listing = ModelList(default=DefaultModel(model_id=models[0].id, chosen=False), models=models)
    return json.dumps(listing.model_dump(mode="json")).encode()


@pytest.mark.parametrize(
    "command",
    [
        [str(Path(sys.executable).with_name("mnist-service"))],  # the console script
        [sys.executable, "-m", "service"],
    ],
    ids=["console-script", "python-m-service"],
)
def test_a_reader_that_stops_early_ends_the_command_quietly(command):
    with stub_server({"/models": (200, "application/json", model_listing())}) as url:
        process = subprocess.Popen(
            [*command, "models", "--url", url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            header = process.stdout.readline()
            process.stdout.close()  # like `head -1`: one line read, the pipe closed
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert header.split() == ["MODEL", "TEST", "ACC", "NETWORK", "AND", "TRAINING"]
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert stderr == ""
    assert process.returncode == 128 + 13  # as if SIGPIPE had ended it, which the shell reports as 141


def test_a_whole_listing_read_to_the_end_still_exits_0():
    with stub_server({"/models": (200, "application/json", model_listing())}) as url:
        done = cli("models", url=url, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == MODELS + 1 and done.stderr == ""
