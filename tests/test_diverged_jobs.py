"""A job that diverges fails, saying so and where, and saves nothing; and a model that cannot be read (corrupt or
invalid metadata, missing or corrupt weights) never breaks the listing, the default, or another model's answers."""

import json
import logging
import math
import re

import pytest

from service.domain.model_store import METADATA_FILE, WEIGHTS_FILE, ModelUnreadable, list_models, load_network
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from tests.helpers import add_model, wait_for_job
from worker.training import TrainingError, device_dataset, resolve_device, train

# From the issue: with momentum at learning rate 10 the loss becomes NaN within a few batches.
DIVERGING = {
    "learning_rate": 10,
    "optimizer": "momentum",
    "batch_norm": True,
    "hidden_units": 1024,
    "train_batches": 150,
    "seed": 1,
}
PIXELS = {"pixels": [[0] * 28 for _ in range(28)]}
V2_BODY = {"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.0] * 784}]}


def test_the_training_loop_stops_at_the_first_batch_whose_loss_is_not_finite(mnist_data_dir):
    config = TrainingConfig(**DIVERGING)
    data = device_dataset(mnist_data_dir, resolve_device("cpu"))
    seen = []
    # The test loss (every 5 batches, in eval mode) may go first: batch norm's running statistics blow up.
    with pytest.raises(
        TrainingError, match=r"^training diverged: the (test )?loss became nan at batch \d+; "
    ) as caught:
        for point in train(build_network(config), config, data):
            seen.append(point)
    batch = int(caught.value.args[0].split("at batch ")[1].split(";")[0])
    assert [p.batch for p in seen] == list(range(1, batch))  # every point before it, none from it on
    assert all(math.isfinite(p.loss) for p in seen)
    assert "lower the learning_rate" in str(caught.value)


def test_a_diverged_job_fails_saying_where_and_saves_no_model(service):
    with service.client() as client:
        job = wait_for_job(client, client.post("/jobs", json=DIVERGING).json()["id"], timeout=300)
        assert job["status"] == "failed", job
        assert re.match(
            r"training diverged: the (test )?loss became nan at batch \d+; lower the learning_rate", job["error"]
        )
        assert job["model_id"] is None
        listing = client.get("/models")
        assert listing.status_code == 200
        assert job["id"] not in [model["job_id"] for model in listing.json()["models"]]
        assert client.get(f"/jobs/{job['id']}/metrics").status_code == 200
    assert not [m for m in list_models(service.model_dir) if m.job_id == job["id"]]


def break_metadata(model_dir, model_id, text: str) -> None:
    (model_dir / model_id / METADATA_FILE).write_text(text)


def test_models_that_cannot_be_read_are_skipped_and_named_never_a_500(api, caplog):
    caplog.set_level(logging.WARNING, logger="service.domain.model_store")
    good = add_model(api.model_dir, 1)
    nan_loss = add_model(api.model_dir, 2)  # what a diverged job used to save: NaN is written as null
    metadata = json.loads((api.model_dir / nan_loss / METADATA_FILE).read_text())
    break_metadata(api.model_dir, nan_loss, json.dumps({**metadata, "test_loss": None}))
    truncated = add_model(api.model_dir, 3)
    break_metadata(api.model_dir, truncated, '{"id": "trunc')
    no_weights = add_model(api.model_dir, 4)
    (api.model_dir / no_weights / WEIGHTS_FILE).unlink()
    corrupt_weights = add_model(api.model_dir, 5)
    (api.model_dir / corrupt_weights / WEIGHTS_FILE).write_bytes(b"not safetensors at all")
    no_metadata = add_model(api.model_dir, 6)
    (api.model_dir / no_metadata / METADATA_FILE).unlink()
    unreadable_metadata = (nan_loss, truncated)

    with api.client() as client:
        listing = client.get("/models")
        assert listing.status_code == 200, listing.text
        assert [m["id"] for m in listing.json()["models"]] == [corrupt_weights, no_weights, good]
        for model_id in (*unreadable_metadata, no_metadata):
            assert any(model_id in record.getMessage() for record in caplog.records), model_id

        # The default passes over the models whose metadata or weights cannot be read.
        served = client.post("/predict", json=PIXELS)
        assert served.status_code == 200, served.text
        assert served.json()["model_id"] == good
        v2 = client.post("/v2/models/mnist/infer", json=V2_BODY)
        assert v2.status_code == 200, v2.text
        assert v2.json()["model_version"] == good
        assert client.get("/v2/health/ready").status_code == 200

        # Each one, named, is a clear 404 rather than a 500; the good one still answers by name.
        for model_id in (*unreadable_metadata, no_weights, corrupt_weights):
            for response in (
                client.post("/predict", params={"model_id": model_id}, json=PIXELS),
                client.post(f"/v2/models/mnist/versions/{model_id}/infer", json=V2_BODY),
            ):
                assert response.status_code == 404, (model_id, response.text)
                assert f"model {model_id!r} cannot be read" in response.text, response.text
        for model_id in unreadable_metadata:
            response = client.get(f"/models/{model_id}")
            assert response.status_code == 404 and "cannot be read" in response.json()["detail"], response.text
            assert client.post(f"/models/{model_id}/default").status_code == 404
        assert client.post("/predict", params={"model_id": good}, json=PIXELS).status_code == 200

        # A chosen default that cannot be read gives way to no other model (nobody chose one): a 409 that says so;
        # deleting the broken models works.
        assert client.post(f"/models/{corrupt_weights}/default").status_code == 200
        served = client.post("/predict", json=PIXELS)
        assert served.status_code == 409 and f"the default model {corrupt_weights!r} cannot be read" in served.text
        assert client.post(f"/models/{good}/default").status_code == 200
        assert client.post("/predict", json=PIXELS).json()["model_id"] == good
        for model_id in (*unreadable_metadata, no_weights, corrupt_weights):
            assert client.delete(f"/models/{model_id}").status_code == 204
        assert [m["id"] for m in client.get("/models").json()["models"]] == [good]


def test_loading_an_unreadable_model_says_which_file_and_why(tmp_path):
    model_id = add_model(tmp_path, 1)
    (tmp_path / model_id / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelUnreadable, match=rf"model '{model_id}' cannot be read: {WEIGHTS_FILE}: the file is"):
        load_network(tmp_path, model_id)
    break_metadata(tmp_path, model_id, '{"id": 3}')
    with pytest.raises(ModelUnreadable, match=rf"model '{model_id}' cannot be read: {METADATA_FILE}: id: "):
        load_network(tmp_path, model_id)
