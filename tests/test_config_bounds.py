"""No config asks for unbounded work: each is refused at submission (422 naming the field and the limit) beyond
the bounds on filters, parameters, activations and batches; the presets, and sensible configs, stay valid; and a
job's metric stream is capped as a safety net, above what any legal job writes."""

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from service.domain.metric_point import MetricPoint
from service.domain.network import build_network, parameter_count
from service.domain.training_config import (
    MAX_ACTIVATION_VALUES,
    MAX_PARAMETERS,
    MAX_TOTAL_BATCHES,
    PRESETS,
    STORED,
    TrainingConfig,
)
from service.queue import metric_stream
from worker.publisher import MetricPublisher

REFUSED = [
    # (fields, the field named, words of the message)
    ({"conv_filters": [10**9]}, ("conv_filters", 0), "less than or equal to 256"),
    ({"conv_filters": [-5]}, ("conv_filters", 0), "greater than or equal to 1"),
    ({"conv_filters": [0]}, ("conv_filters", 0), "greater than or equal to 1"),
    (
        {"conv_filters": [4096, 4096, 4096, 4096], "kernel_size": 7, "padding": "same"},
        ("conv_filters", 0),
        "less than or equal to 256",
    ),
    ({"epochs": 100, "batch_size": 1}, ("epochs",), "6,000,000 batches; at most 100,000"),
    ({"epochs": 100, "batch_size": 32}, ("epochs",), "187,500 batches; at most 100,000"),
    ({"train_batches": 1_000_000}, ("train_batches",), "less than or equal to 100000"),
    (
        {"conv_filters": [64], "kernel_size": 3, "padding": "same", "hidden_units": 1024},
        ("hidden_units",),
        "12,856,970 parameters; at most 10,000,000",
    ),
    (
        {"conv_filters": [256], "kernel_size": 1, "hidden_units": 1024},
        ("hidden_units",),
        "parameters; at most 10,000,000",
    ),
    (
        {"conv_filters": [64, 128], "kernel_size": 3, "padding": "same", "batch_norm": True, "batch_size": 8192},
        ("batch_size",),
        "activation values for the backward pass; at most 536,870,912",
    ),
]

ACCEPTED = [
    *({"preset": name} for name in PRESETS),
    {"batch_size": 8192},  # the tutorial's net at the largest batch
    {"preset": "fast", "batch_size": 8192},
    {"preset": "best", "epochs": 100},
    {"epochs": 100},  # 93,750 batches of 64
    {"train_batches": MAX_TOTAL_BATCHES},
    {"conv_filters": [32, 64], "kernel_size": 3, "padding": "same", "hidden_units": 1024, "batch_size": 512},
    {"conv_filters": [64, 128], "kernel_size": 3, "padding": "same", "batch_norm": True, "hidden_units": 1024},
    {"conv_filters": [256, 256, 256, 256], "kernel_size": 3, "padding": "same", "hidden_units": 1024},
    {"conv_filters": [256]},
]


@pytest.mark.parametrize("fields, loc, words", REFUSED)
def test_unbounded_work_is_refused_naming_the_field_and_the_limit(fields, loc, words):
    with pytest.raises(ValidationError) as caught:
        TrainingConfig(**fields)
    errors = caught.value.errors()
    assert errors[0]["loc"] == loc, errors
    assert words in errors[0]["msg"], errors


@pytest.mark.parametrize("fields", ACCEPTED)
def test_presets_and_sensible_configs_stay_valid(fields):
    config = TrainingConfig(**fields)
    assert config.total_batches <= MAX_TOTAL_BATCHES
    assert config.parameters <= MAX_PARAMETERS
    assert config.activation_values <= MAX_ACTIVATION_VALUES


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"preset": "fast"},
        {"preset": "best"},
        {"conv_filters": [16, 32, 64], "padding": "same", "kernel_size": 3, "batch_norm": True},
        {"conv_filters": [4], "kernel_size": 7, "hidden_units": 32, "dropout": 0.5},
        {"conv_filters": [8, 8, 8, 8], "padding": "same", "kernel_size": 4},
        {"conv_filters": [256], "kernel_size": 1},
    ],
)
def test_the_parameter_count_is_the_built_networks(fields):
    config = TrainingConfig(**fields)
    assert config.parameters == parameter_count(build_network(config))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_activation_estimate_covers_what_torch_keeps_for_the_backward_pass(preset):
    config = TrainingConfig(preset=preset)
    network = build_network(config).train()
    kept: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        # Values, whatever their type (a max-pool's int64 indices count as two float32 values).
        kept[tensor.data_ptr(), tensor.numel()] = tensor.numel() * tensor.element_size() // 4
        return tensor

    images = torch.rand(config.batch_size, 1, 28, 28)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        F.cross_entropy(network(images), torch.zeros(config.batch_size, dtype=torch.long))
    assert 0.5 * config.activation_values < sum(kept.values()) <= config.activation_values


def test_the_api_answers_422_naming_the_field_and_the_limit(api):
    with api.client() as client:
        huge = client.post("/jobs", json={"conv_filters": [10**9]})
        assert huge.status_code == 422, huge.text
        assert huge.json()["detail"][0]["loc"] == ["body", "conv_filters", 0]
        assert "less than or equal to 256" in huge.json()["detail"][0]["msg"]
        long = client.post("/jobs", json={"epochs": 100, "batch_size": 1})
        assert long.status_code == 422, long.text
        assert long.json()["detail"][0]["loc"] == ["body", "epochs"]
        assert "6,000,000 batches; at most 100,000" in long.json()["detail"][0]["msg"]
        assert client.post("/jobs", json={"preset": "best"}).status_code == 202
        # The dashboard's form reads the bounds from the schema.
        schema = client.get("/openapi.json").json()["components"]["schemas"]["TrainingConfig"]["properties"]
        assert schema["conv_filters"]["items"]["maximum"] == 256
        assert schema["train_batches"]["anyOf"][0]["maximum"] == MAX_TOTAL_BATCHES


def test_the_metric_stream_is_capped_above_any_legal_job():
    assert metric_stream.MAX_POINTS >= MAX_TOTAL_BATCHES
    assert TrainingConfig(train_batches=MAX_TOTAL_BATCHES).total_batches <= metric_stream.MAX_POINTS


def test_a_publisher_keeps_the_stream_near_its_cap(redis):
    job_id = "capped-stream-test"
    redis.delete(metric_stream.stream_key(job_id))
    with MetricPublisher(redis, job_id, retention_s=60, max_points=200, linger_s=0) as publisher:
        for batch in range(1, 2001):
            publisher.publish(MetricPoint(batch=batch, loss=1.0, accuracy=0.5, elapsed_s=0.1))
    length = redis.xlen(metric_stream.stream_key(job_id))
    assert 200 <= length < 400  # trimmed approximately: whole nodes of the stream, never below the cap
    newest = redis.xrevrange(metric_stream.stream_key(job_id), count=1)[0][0]
    assert newest == b"1-2000"  # the newest points are the ones kept
    redis.delete(metric_stream.stream_key(job_id))


def test_a_stored_record_over_todays_bounds_is_still_read():
    """A job in Redis or a model's metadata written under older, looser bounds must not break the listings."""
    record = {"epochs": 100, "batch_size": 1, "seed": 1}
    with pytest.raises(ValidationError):
        TrainingConfig.model_validate(record)
    assert TrainingConfig.model_validate(record, context={STORED: True}).total_batches == 6_000_000
