"""Which model serves, the bounded cache of loaded networks, and the store's delete and default choice."""

import threading

import numpy as np
import pytest
import torch

from service.domain.model_store import (
    DEFAULT_FILE,
    ModelNotFound,
    choose_default_model,
    default_model,
    default_model_id,
    delete_model,
    list_models,
    load_network,
    no_default_reason,
)
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from service.serving.inference import Batcher, ModelCache, NoDefaultModel, classify
from tests.helpers import add_model


def test_the_default_is_the_first_model_saved_until_another_is_chosen_and_none_once_it_is_deleted(tmp_path):
    assert default_model(tmp_path) is None
    january, march = add_model(tmp_path, 1), add_model(tmp_path, 3)
    assert default_model(tmp_path) == (january, False)
    choose_default_model(tmp_path, march)
    may = add_model(tmp_path, 5)
    assert default_model(tmp_path) == (march, True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging file left
    delete_model(tmp_path, march)
    assert default_model(tmp_path) is None and "'" + march + "', was deleted" in no_default_reason(tmp_path)
    assert [m.id for m in list_models(tmp_path)] == [may, january]
    july = add_model(tmp_path, 7)
    assert default_model_id(tmp_path) == july


def test_deleting_or_choosing_an_unknown_model_is_not_found(tmp_path):
    model_id = add_model(tmp_path, 1)
    delete_model(tmp_path, model_id)
    assert [p.name for p in tmp_path.iterdir()] == [DEFAULT_FILE]  # naming the deleted default, for the 409
    choice = (tmp_path / DEFAULT_FILE).read_text()
    for action in (delete_model, choose_default_model):
        for bad in (model_id, "../x", f"{model_id}/../../x"):
            with pytest.raises(ModelNotFound):
                action(tmp_path, bad)
    assert (tmp_path / DEFAULT_FILE).read_text() == choice


def test_the_cache_resolves_ids_against_the_store_each_time(tmp_path):
    cache = ModelCache(tmp_path, size=2)
    with pytest.raises(NoDefaultModel, match="POST /jobs first"):
        cache.resolve(None)
    model_id = add_model(tmp_path, 1)
    assert cache.resolve(None) == cache.resolve(model_id) == model_id
    cache.network(model_id)
    delete_model(tmp_path, model_id)  # as another replica would: this cache still holds the network
    with pytest.raises(ModelNotFound):
        cache.resolve(model_id)
    with pytest.raises(NoDefaultModel):
        cache.resolve(None)


def test_the_cache_keeps_the_most_recently_used_networks(tmp_path):
    cache = ModelCache(tmp_path, size=2)
    first, second, third = (add_model(tmp_path, month) for month in (1, 2, 3))
    kept = cache.network(first)
    dropped = cache.network(second)
    assert cache.network(first) is kept  # first is now the most recently used: second goes next
    cache.network(third)
    assert cache.network(first) is kept and cache.network(second) is not dropped
    cache.discard(first)
    assert cache.network(first) is not kept


def test_classify_gives_the_networks_softmax(tmp_path):
    model_id = add_model(tmp_path, 1)
    network, _ = load_network(tmp_path, model_id)
    images = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    probabilities = classify(network, images)
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(1), 1, atol=1e-6)
    expected = torch.softmax(network(torch.from_numpy(images).unsqueeze(1)), 1).detach().numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5)


def test_the_batcher_answers_each_concurrent_request_with_its_own_rows():
    network = build_network(TrainingConfig(seed=0)).eval()
    other = build_network(TrainingConfig(seed=1)).eval()
    batcher = Batcher(max_images=64)
    rng = np.random.default_rng(0)
    requests = [(network if i % 3 else other, rng.random((1 + i % 4, 28, 28), dtype=np.float32)) for i in range(40)]
    answers = [None] * len(requests)

    def ask(i):
        answers[i] = batcher.classify(*requests[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (net, images), answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(answer, classify(net, images), atol=1e-5)


def test_the_batcher_hands_an_error_to_the_request_and_lives_on():
    batcher = Batcher()
    network = build_network(TrainingConfig(seed=0)).eval()
    with pytest.raises(RuntimeError):
        batcher.classify(network, np.zeros((1, 27, 27), dtype=np.float32))
    assert batcher.classify(network, np.zeros((2, 28, 28), dtype=np.float32)).shape == (2, 10)
