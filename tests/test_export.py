"""GET /models/{id}/download: the stored safetensors, and an ONNX export that onnxruntime runs as PyTorch does."""

import numpy as np
import onnxruntime
from safetensors.numpy import load as load_safetensors

from service.domain import model_store
from service.domain.mnist import load_mnist
from service.serving.export import ONNX_FILE
from service.serving.inference import classify


def test_safetensors_is_the_stored_file(shared_api, trained_model):
    with shared_api.client() as client:
        answer = client.get(f"/models/{trained_model}/download")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == f'attachment; filename="{trained_model}.safetensors"'
    assert answer.content == model_store.weights_file(shared_api.model_dir, trained_model).read_bytes()
    assert "0.weight" in load_safetensors(answer.content)


def test_onnx_matches_pytorch_for_any_batch_size_and_is_cached(shared_api, trained_model, mnist_data_dir):
    with shared_api.client() as client:
        answer = client.get(f"/models/{trained_model}/download", params={"format": "onnx"})
        assert answer.status_code == 200, answer.text
        cached = shared_api.model_dir / trained_model / ONNX_FILE
        assert cached.read_bytes() == answer.content
        exported_at = cached.stat().st_mtime_ns
        assert client.get(f"/models/{trained_model}/download", params={"format": "onnx"}).content == answer.content
        assert cached.stat().st_mtime_ns == exported_at  # served from the cache, not exported again

    session = onnxruntime.InferenceSession(answer.content, providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape[1:]) for i in session.get_inputs()] == [("image", "tensor(float)", [1, 28, 28])]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    network, _ = model_store.load_network(shared_api.model_dir, trained_model)
    images = (load_mnist(mnist_data_dir).test_images[:500] / 255).astype(np.float32)
    for count in (1, 7, 500):  # the batch axis is dynamic
        (onnx_probabilities,) = session.run(None, {"image": images[:count, None]})
        torch_probabilities = classify(network, images[:count])
        difference = np.abs(onnx_probabilities - torch_probabilities).max()
        print(f"ONNX vs PyTorch, {count} images: max abs difference {difference:.3g}")
        assert onnx_probabilities.shape == (count, 10) and difference <= 1e-5


def test_unknown_model_is_404_bad_format_and_bad_id_422(api):
    with api.client() as client:
        unknown = client.get("/models/20000101T000000Z-00000000/download", params={"format": "onnx"})
        assert unknown.status_code == 404 and unknown.json() == {"detail": "no model '20000101T000000Z-00000000'"}
        bad_format = client.get("/models/20000101T000000Z-00000000/download", params={"format": "pickle"})
        assert bad_format.status_code == 422 and bad_format.json()["detail"][0]["loc"] == ["query", "format"]
        assert client.get("/models/not-a-model-id/download").status_code == 422
