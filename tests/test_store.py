"""The model store: safetensors round trip, atomic folders, ids that cannot escape the store."""

from datetime import UTC, datetime

import pytest
import torch

from service.domain.model_store import DEFAULT_FILE, ModelNotFound, list_models, load_network, save_model
from service.domain.network import build_network, parameter_count
from service.domain.training_config import TrainingConfig
from tests.helpers import model_metadata as metadata


def test_a_saved_model_loads_and_answers_the_same(tmp_path):
    config = TrainingConfig(conv_filters=[8, 16], batch_norm=True, hidden_units=16)
    network = build_network(config).eval()
    saved = metadata(config, datetime.now(UTC))
    folder = save_model(tmp_path, network, saved)
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "weights.safetensors"]
    # No staging folder left behind; beside the model, the default's file: the first model saved is the default.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([saved.id, DEFAULT_FILE])
    loaded, loaded_metadata = load_network(tmp_path, saved.id)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded(x), network(x))
    assert loaded_metadata == saved
    assert parameter_count(loaded) == parameter_count(network)


def test_models_are_listed_newest_first(tmp_path):
    config = TrainingConfig()
    older = metadata(config, datetime(2026, 1, 1, tzinfo=UTC))
    newer = metadata(config, datetime(2026, 2, 1, tzinfo=UTC))
    for m in (older, newer):
        save_model(tmp_path, build_network(config), m)
    assert [m.id for m in list_models(tmp_path)] == [newer.id, older.id]
    assert list_models(tmp_path / "absent") == []


@pytest.mark.parametrize("model_id", ["../etc", "20260101T000000Z-00000000", "x" * 300, "/tmp", ""])
def test_unknown_or_malformed_ids_are_not_found(tmp_path, model_id):
    with pytest.raises(ModelNotFound):
        load_network(tmp_path, model_id)
