"""What makes serving fast keeps answering the same: the API runs on uvloop and httptools, one pixel grid is read
at once by numpy into the array `pixels_to_array` makes, the batcher's event-loop batches give `classify`'s
answers, and the default model is re-read when the store changes. Speed itself is measured by `python -m bench`
(docs/benchmarks.md), never asserted here."""

import asyncio
import json
import time

import numpy as np
import pytest
import uvicorn

from service.api.routes.predict import one_pixel_grid
from service.domain.model_store import choose_default_model, delete_model
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from service.launcher import cli
from service.serving.images import pixels_to_array
from service.serving.inference import Batcher, ModelCache, NoDefaultModel, classify
from tests.helpers import add_model


def test_the_api_runs_on_uvloop_and_httptools(monkeypatch):
    import httptools  # noqa: F401  (installed with uvicorn[standard])
    import uvloop  # noqa: F401

    given = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: given.update(kwargs))
    monkeypatch.setattr(cli, "setup_logging", lambda level: None)  # the test process's logging stays as it is
    cli.main(["api", "--port", "8123"])
    assert given["loop"] == "uvloop" and given["http"] == "httptools"


def grids(rng: np.random.Generator) -> list[dict]:
    ints = rng.integers(0, 256, 784).tolist()
    floats = (rng.random(784) * 255).tolist()
    unit = rng.random(784).round(6).tolist()
    return [
        {"pixels": ints},
        {"pixels": floats},
        {"pixels": [*ints[:400], *floats[400:]]},  # ints and floats mixed
        {"pixels": unit, "scale": "1"},
        {"pixels": [ints[row * 28 : (row + 1) * 28] for row in range(28)], "scale": "255"},
        {"pixels": [0] * 783 + [255]},
    ]


def test_one_pixel_grid_reads_to_the_array_pixels_to_array_makes():
    for document in grids(np.random.default_rng(0)):
        parsed = json.loads(json.dumps(document))
        fast = one_pixel_grid(parsed)
        assert fast is not None and fast.dtype == np.float32 and fast.shape == (28, 28)
        np.testing.assert_array_equal(fast, pixels_to_array(parsed["pixels"], parsed.get("scale", "255")))


@pytest.mark.parametrize(
    "document",
    [
        {"pixels": [True] + [0] * 783},  # bool is an int to Python: pixels_to_array refuses it, and says why
        {"pixels": ["12"] + [0] * 783},
        {"pixels": [None] + [0] * 783},
        {"pixels": [256] + [0] * 783},
        {"pixels": [-1] + [0] * 783},
        {"pixels": [2.0] + [0] * 783, "scale": "1"},
        {"pixels": [float("nan")] + [0] * 783},
        {"pixels": [10**400] + [0] * 783},
        {"pixels": [0] * 783},
        {"pixels": [[0] * 28] * 27},
        {"pixels": [[0] * 28] * 27 + [[0] * 27]},
        {"pixels": [0] * 784, "scale": 255},
        {"pixels": [0] * 784, "extra": 1},
        {"image": "aGk="},
        [0] * 784,
    ],
)
def test_anything_else_is_left_to_the_full_path_that_explains_it(document):
    assert one_pixel_grid(document) is None


def network(seed: int = 0):
    return build_network(TrainingConfig(seed=seed)).eval()


def test_event_loop_batches_answer_each_request_with_its_own_rows_in_one_pass():
    batcher = Batcher(max_images=64)
    nets = [network(0), network(1)]
    rng = np.random.default_rng(2)
    requests = [(nets[i % 2], rng.random((1 + i % 3, 28, 28), dtype=np.float32)) for i in range(30)]
    passes = []

    async def ask_all():
        run = batcher._run
        batcher._run = lambda *args: (passes.append(len(args[1])), run(*args))[1]
        return await asyncio.gather(*(batcher.classify_async(net, images) for net, images in requests))

    answers = asyncio.run(ask_all())
    for (net, images), answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(answer, classify(net, images), atol=1e-5)
    assert sorted(passes) == [15, 15]  # one pass per network for the 30 requests that came in the same turn


def test_a_lone_request_is_answered_at_once_and_errors_reach_their_request():
    batcher = Batcher()
    net = network()

    async def ask():
        started = time.perf_counter()
        await batcher.classify_async(net, np.zeros((1, 28, 28), dtype=np.float32))
        took = time.perf_counter() - started
        with pytest.raises(RuntimeError):
            await batcher.classify_async(net, np.zeros((1, 27, 27), dtype=np.float32))
        return took

    assert asyncio.run(ask()) < 1.0  # no timer to wait for (generous: the machine may be busy)


def test_the_remembered_default_follows_the_store(tmp_path):
    cache = ModelCache(tmp_path, size=8)
    assert cache.loaded(None) is None
    january = add_model(tmp_path, 1)
    model_id, _ = cache.resolve_and_load(None)
    assert model_id == january and cache.loaded(None)[0] == january
    march = add_model(tmp_path, 3, make_default=True)  # a newer model saved as the default is the default at once
    assert cache.loaded(None) is None and cache.resolve_and_load(None)[0] == march
    choose_default_model(tmp_path, january)
    assert cache.loaded(None) is None and cache.resolve_and_load(None)[0] == january
    assert cache.loaded(january)[0] == january and cache.loaded("20260101T000000Z-00000000") is None
    delete_model(tmp_path, january)
    assert cache.loaded(None) is None and cache.loaded(january) is None
    with pytest.raises(NoDefaultModel, match="was deleted"):
        cache.resolve_and_load(None)
