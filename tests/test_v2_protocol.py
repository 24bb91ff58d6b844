"""The Open Inference Protocol v2 as its own client sees it: Triton's `tritonclient.http` over real HTTP against
the API (served in the test process), on real MNIST test images, its answers checked against /predict's."""

import re

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from service.domain.mnist import load_mnist
from service.serving.open_inference import InferenceRequest, ProtocolError, network_input

COUNT = 40


@pytest.fixture(scope="module")
def mnist_images(mnist_data_dir) -> np.ndarray:
    return load_mnist(mnist_data_dir).test_images[:COUNT]  # uint8 (N, 28, 28)


@pytest.fixture
def server(shared_api, trained_model) -> triton.InferenceServerClient:
    client = triton.InferenceServerClient(url=shared_api.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture
def expected_digits(shared_api, trained_model, mnist_images) -> list[int]:
    """What /predict answers for the same images, sent as pixel grids (used as sent, like the tensors)."""
    with shared_api.client() as client:
        answer = client.post(
            "/predict",
            params={"model_id": trained_model},
            json={"instances": [{"pixels": image.tolist()} for image in mnist_images]},
        )
    assert answer.status_code == 200, answer.text
    return [prediction["digit"] for prediction in answer.json()["predictions"]]


def image_input(array: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("image", list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array, binary_data=False)  # the JSON form: the binary extension is not spoken
    return tensor


def test_server_and_model_are_live_ready_and_described(server, trained_model):
    assert server.is_server_live() and server.is_server_ready()
    assert server.is_model_ready("mnist") and server.is_model_ready("mnist", trained_model)
    assert not server.is_model_ready("other")
    assert server.get_server_metadata() == {"name": "mnist-service", "version": "0.1.0", "extensions": []}
    metadata = server.get_model_metadata("mnist")
    assert trained_model in metadata["versions"]
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert metadata["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "digit", "datatype": "INT64", "shape": [-1]},
    ]
    assert server.get_model_metadata("mnist", trained_model)["versions"] == [trained_model]


def test_fp32_nchw_and_uint8_flat_give_predicts_digits(server, trained_model, mnist_images, expected_digits):
    fp32 = (mnist_images / 255).astype(np.float32)[:, None]  # [N, 1, 28, 28] in 0..1
    uint8 = mnist_images.reshape(COUNT, 784)  # [N, 784] in 0..255
    for array in (fp32, uint8):
        result = server.infer("mnist", [image_input(array)], model_version=trained_model, request_id="r1")
        assert result.get_response()["model_version"] == trained_model
        assert result.get_response()["id"] == "r1"
        probabilities, digits = result.as_numpy("probabilities"), result.as_numpy("digit")
        assert probabilities.shape == (COUNT, 10) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
        assert digits.dtype == np.int64 and digits.tolist() == expected_digits
        assert (probabilities.argmax(axis=1) == digits).all()


def test_without_a_version_the_default_model_answers(shared_api, server, mnist_images):
    with shared_api.client() as client:
        default = client.get("/models").json()["default"]["model_id"]
    result = server.infer("mnist", [image_input(mnist_images[:2].reshape(2, 784))])
    assert result.get_response()["model_version"] == default


def test_only_the_outputs_asked_for_come_back(server, trained_model, mnist_images, expected_digits):
    # The version is named: other tests train newer models, which become the default.
    result = server.infer(
        "mnist",
        [image_input(mnist_images[:3].reshape(3, 784))],
        model_version=trained_model,
        outputs=[triton.InferRequestedOutput("digit", binary_data=False)],
    )
    assert [output["name"] for output in result.get_response()["outputs"]] == ["digit"]
    assert result.as_numpy("digit").tolist() == expected_digits[:3]
    assert result.as_numpy("probabilities") is None


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 28, 28), np.float32), "shape [2, 28, 28] is not accepted; send [N, 1, 28, 28] or [N, 784]"),
        (np.zeros((2, 784), np.float64), "datatype FP64 is not accepted; send FP32 or UINT8"),
        (np.full((1, 784), 2, np.float32), "FP32 values must be within 0..1; found 2 at index 0"),
        (np.zeros((257, 784), np.uint8), "N must be 1 to 256; got 257"),
    ],
)
def test_bad_tensors_are_400_with_the_protocols_error(server, array, message):
    with pytest.raises(InferenceServerException) as error:
        server.infer("mnist", [image_input(array)])
    assert error.value.status() == "400" and message in error.value.message()


def test_unknown_models_and_versions_are_404_malformed_versions_400(server):
    for name, version, status, message in [
        ("fashion", "", "404", "unknown model 'fashion'"),
        ("mnist", "20000101T000000Z-00000000", "404", "no model '20000101T000000Z-00000000'"),
        ("mnist", "latest", "400", "version: String should match pattern"),
    ]:
        with pytest.raises(InferenceServerException) as error:
            server.get_model_metadata(name, version)
        assert error.value.status() == status and message in error.value.message()


def test_errors_outside_v2_keep_the_apis_own_form(api):
    with api.client() as client:
        v2 = client.post("/v2/models/mnist/infer", json={"inputs": []})
        assert v2.status_code == 400 and set(v2.json()) == {"error"}
        assert "inputs: List should have at least 1 item" in v2.json()["error"]
        own = client.get("/models/20000101T000000Z-00000000")
        assert own.status_code == 404 and set(own.json()) == {"detail"}


def test_a_wrong_input_name_and_an_unknown_output_are_refused(shared_api, trained_model):
    body = {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}]}
    with httpx.Client(base_url=shared_api.url) as client:
        wrong_input = client.post("/v2/models/mnist/infer", json=body)
        body["inputs"][0]["name"] = "image"
        wrong_output = client.post("/v2/models/mnist/infer", json={**body, "outputs": [{"name": "logits"}]})
        nested = client.post(
            "/v2/models/mnist/infer", json={"inputs": [{**body["inputs"][0], "data": [[0] * 28] * 28}]}
        )
    assert wrong_input.status_code == 400 and "unknown input 'pixels'" in wrong_input.json()["error"]
    assert wrong_output.status_code == 400 and wrong_output.json()["error"].startswith("outputs.0.name:")
    assert nested.status_code == 200 and nested.json()["outputs"][1]["shape"] == [1]  # nested data is row-major too


def test_with_an_api_key_only_the_probes_are_open(serve_api):
    key = "a-key-for-the-v2-test"
    locked = serve_api(api_key=key)  # a model store of its own: no model yet
    server = triton.InferenceServerClient(url=locked.url.removeprefix("http://"))
    try:
        assert server.is_server_live() and server.get_server_metadata()["name"] == "mnist-service"
        assert not server.is_server_ready()  # no model to serve yet
        with pytest.raises(InferenceServerException) as refused:
            server.get_model_metadata("mnist")
        assert refused.value.status() == "401" and "API key" in refused.value.message()
        with pytest.raises(InferenceServerException) as no_model:
            server.get_model_metadata("mnist", headers={"Authorization": f"Bearer {key}"})
        assert no_model.value.status() == "404" and "no trained model yet" in no_model.value.message()
    finally:
        server.close()


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            {"shape": [1, 784], "datatype": "UINT8", "data": [0.5] * 784},
            "UINT8 integers must be within 0..255; found 0.5",
        ),
        ({"shape": [2, 784], "datatype": "UINT8", "data": [0] * 784}, "shape [2, 784] holds 1568 values; data has 784"),
        ({"shape": [1, 784], "datatype": "FP32", "data": ["a"] * 784}, "data must be numbers"),
        ({"shape": [1, 784], "datatype": "FP32", "data": [[0] * 700, [0] * 84]}, "data must be numbers"),  # ragged
    ],
)
def test_tensor_data_is_checked_before_the_network_sees_it(tensor, message):
    request = InferenceRequest(inputs=[{"name": "image", **tensor}])
    with pytest.raises(ProtocolError, match=re.escape(message)):
        network_input(request, max_batch=256)
