"""TrainingConfig: the tutorial's defaults, presets, and a clear error for every bad field."""

import pytest
from pydantic import ValidationError

from service.domain.training_config import TrainingConfig


def test_defaults_are_the_tutorials():
    config = TrainingConfig()
    assert (config.optimizer, config.learning_rate, config.batch_size) == ("sgd", 0.15, 64)
    assert (config.train_batches, config.test_batch_size, config.test_every) == (100, 1000, 5)
    assert (config.conv_filters, config.kernel_size, config.padding, config.hidden_units) == ([8, 16], 5, "valid", 0)
    assert config.total_batches == 100


def test_epochs_replace_train_batches():
    config = TrainingConfig(epochs=2, batch_size=128)
    assert config.train_batches is None
    assert config.total_batches == 938  # ceil(2 * 60000 / 128)


def test_resolved_draws_a_seed_once_and_keeps_a_given_one():
    resolved = TrainingConfig().resolved()
    assert resolved.seed is not None
    assert resolved.resolved() == resolved
    assert TrainingConfig(seed=7).resolved().seed == 7


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"learning_rate": 0}, "learning_rate", "greater than 0"),
        ({"batch_size": 0}, "batch_size", "greater than or equal to 1"),
        ({"batch_size": 100_000}, "batch_size", "less than or equal to 8192"),
        ({"train_batches": -1}, "train_batches", "greater than or equal to 1"),
        ({"optimizer": "rmsprop"}, "optimizer", "'sgd', 'momentum' or 'adam'"),
        ({"device": "tpu"}, "device", "'auto', 'cpu' or 'cuda'"),
        ({"conv_filters": []}, "conv_filters", "at least 1 item"),
        ({"conv_filters": [8, 8, 8, 8, 8]}, "conv_filters", "at most 4 items"),
        ({"dropout": 1.0}, "dropout", "less than 1"),
        ({"seed": -3}, "seed", "greater than or equal to 0"),
        ({"learning_rate": "fast"}, "learning_rate", "valid number"),
        ({"momentum": 0.9}, "momentum", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_field_is_named(fields, field, message):
    with pytest.raises(ValidationError) as caught:
        TrainingConfig(**fields)
    (error,) = caught.value.errors()
    assert error["loc"][0] == field
    assert message in error["msg"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"train_batches": 10, "epochs": 1}, "either train_batches or epochs, not both"),
        ({"train_batches": None}, "give train_batches or epochs"),
        ({"preset": "nope"}, "unknown preset 'nope'"),
        ({"conv_filters": [8, 16, 32]}, "shrink the 28x28 image to nothing"),
    ],
)
def test_inconsistent_configs_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        TrainingConfig(**fields)


def test_same_padding_allows_four_layers():
    assert TrainingConfig(conv_filters=[8, 8, 8, 8], padding="same", kernel_size=3).feature_side == 1


def test_presets_are_overridden_by_explicit_fields_length_included():
    fast = TrainingConfig(preset="fast")
    assert fast.optimizer == "adam" and fast.epochs == 1.0 and fast.total_batches == 469
    shorter = TrainingConfig(preset="fast", train_batches=10, learning_rate=0.01)
    assert shorter.total_batches == 10 and shorter.learning_rate == 0.01 and shorter.conv_filters == [16, 32]
    assert TrainingConfig(preset="tutorial") == TrainingConfig()
