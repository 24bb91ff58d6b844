"""The Python client (`service.client.Client`) against the API over real HTTP (served in the test process) and
the session's worker: typed answers, live metric points, every kind of image, batches split at `max_batch`, the
API key, and errors carrying the server's message."""

import uuid

import numpy as np
import pytest
from PIL import Image

from service.client.sdk import Client, Invalid, NotFound, ServiceError, Unauthorized
from service.domain.metric_point import MetricPoint
from service.domain.mnist import load_mnist
from service.schemas.jobs import Job, JobList
from service.schemas.models import ModelList
from service.schemas.predictions import Predictions
from tests.helpers import free_port


@pytest.fixture(scope="module")
def mnist(mnist_data_dir):
    return load_mnist(mnist_data_dir)


def test_train_watch_wait_and_list_are_typed(service):
    with Client(service.url) as client:
        job = client.train({"train_batches": 12, "seed": 3})
        assert isinstance(job, Job) and job.config.train_batches == 12
        points = list(client.watch(job.id))
        assert all(isinstance(point, MetricPoint) for point in points)
        assert [point.batch for point in points] == list(range(1, 13))
        assert points[-1].val_accuracy is not None  # the last batch is always evaluated
        final = client.wait(job.id)
        assert isinstance(final, Job) and final.status == "succeeded" and final.ended and final.model_id
        assert client.job(job.id) == final
        listing = client.jobs(limit=5)
        assert isinstance(listing, JobList) and job.id in [listed.id for listed in listing.jobs]
        models = client.models()
        assert isinstance(models, ModelList) and final.model_id in [model.id for model in models.models]


def test_cancel_returns_the_job(service):
    with Client(service.url) as client:
        job = client.train({"train_batches": 100_000, "seed": 4})
        next(client.watch(job.id))  # running
        assert client.cancel(job.id).id == job.id
        canceled = client.wait(job.id)
        assert canceled.status == "canceled" and canceled.ended


def test_predict_takes_paths_bytes_pil_images_and_arrays(shared_api, trained_model, mnist, tmp_path):
    digits = mnist.test_images[:4]
    picture = Image.fromarray(digits[0]).resize((112, 112))
    path = tmp_path / "digit.png"
    picture.save(path)
    with Client(shared_api.url) as client:
        answer = client.predict(
            [path, str(path), path.read_bytes(), picture, digits[1], digits[2].reshape(784)], model_id=trained_model
        )
        assert isinstance(answer, Predictions) and answer.model_id == trained_model
        assert [p.digit for p in answer.predictions] == [mnist.test_labels[0]] * 4 + list(mnist.test_labels[1:3])
        single = client.predict(digits[3], model_id=trained_model)  # one grid: one prediction
        assert [p.digit for p in single.predictions] == [mnist.test_labels[3]]


def test_more_than_max_batch_images_go_in_several_requests_to_one_model(shared_api, trained_model, mnist):
    images = mnist.test_images[:600]  # the server takes at most 256 per request
    with Client(shared_api.url) as client:
        answer = client.predict(images, model_id=trained_model)
        assert answer.model_id == trained_model and len(answer.predictions) == 600
        # Each part as /predict answers it alone: the split loses or reorders nothing.
        again = client.predict(images[256:300], model_id=trained_model)
        assert answer.predictions[256:300] == again.predictions
        accuracy = np.mean([p.digit for p in answer.predictions] == mnist.test_labels[:600])
        assert accuracy > 0.95
        with pytest.raises(Invalid) as refused:
            Client(shared_api.url, max_batch=300).predict(images[:300])
        # 300 images of pixels hold more values than 256 can: refused (413) before the body is parsed
        assert refused.value.status == 413 and "more than 256 images" in str(refused.value)


def test_errors_are_typed_and_carry_the_servers_message(api):
    with Client(api.url) as client:
        with pytest.raises(Invalid) as invalid:
            client.train({"learning_rate": -1})
        assert invalid.value.status == 422 and str(invalid.value) == "learning_rate: Input should be greater than 0"
        missing = str(uuid.uuid4())
        with pytest.raises(NotFound) as not_found:
            client.job(missing)
        assert not_found.value.status == 404 and missing in str(not_found.value)
    with Client(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(ServiceError) as unreachable:
        client.models()
    assert unreachable.value.status is None and str(unreachable.value).startswith("cannot reach")


def test_the_api_key_is_sent_as_a_bearer_token(serve_api):
    locked = serve_api(api_key="a-key-for-the-client-test")
    with Client(locked.url) as client, pytest.raises(Unauthorized) as refused:
        client.jobs()
    assert refused.value.status == 401 and "API key" in str(refused.value)
    with Client(locked.url, api_key="a-key-for-the-client-test") as client:
        assert isinstance(client.jobs(), JobList)
