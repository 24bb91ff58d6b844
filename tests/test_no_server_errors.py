"""Requests that used to get a 500 (issue 12, item 4): numbers JSON cannot write back, numbers too large for a
float, concurrent ONNX exports, and a model deleted while a request is using it. Each gets a 4xx now.

The app runs in this process (TestClient), so that the races can be made certain by deleting a model between
two steps of a request, with monkeypatch.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.domain import model_store
from service.serving import export, inference
from tests.helpers import add_model

PIXELS = [[0] * 28 for _ in range(28)]
V2_ZEROS = {"inputs": [{"name": "image", "shape": [1, 784], "datatype": "FP32", "data": [0] * 784}]}


@pytest.fixture
def model_dir(tmp_path):
    return tmp_path / "models"


@pytest.fixture
def client(api_settings, model_dir):
    settings = api_settings(model_dir=model_dir)
    # A 500 is an answer to look at here, not an exception in the test.
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def post_json(client: TestClient, url: str, text: str):
    """POST a body as written: JSON with numbers that json.dumps would not write (1e400, NaN)."""
    return client.post(url, content=text.encode(), headers={"content-type": "application/json"})


# Numbers


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"learning_rate": 1e400}', "learning_rate"),  # Python's json reads it as inf
        ('{"learning_rate": -1e400}', "learning_rate"),
        ('{"seed": 1e400}', "seed"),
        ('{"dropout": NaN}', "dropout"),
        ('{"epochs": Infinity, "train_batches": null}', "epochs"),
    ],
)
def test_a_number_json_cannot_write_back_is_a_422_naming_its_field(client, body, field):
    answer = post_json(client, "/jobs", body)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["detail"]
    assert [problem["loc"] for problem in problems] == [["body", field]]
    # The input is echoed as JSON's own word for it.
    assert problems[0]["input"] in ("Infinity", "-Infinity", "NaN")


def test_a_400_digit_integer_in_a_v2_tensor_is_a_400_naming_the_problem(client, model_dir):
    add_model(model_dir)
    for huge in ("1" + "0" * 400, "-" + "9" * 400):
        data = ",".join([huge] + ["0"] * 783)
        body = f'{{"inputs": [{{"name": "image", "shape": [1, 784], "datatype": "FP32", "data": [{data}]}}]}}'
        answer = post_json(client, "/v2/models/mnist/infer", body)
        assert answer.status_code == 400, answer.text
        assert answer.json() == {
            "error": "input 'image': data holds an integer too large to be a number (over 1e308); "
            "FP32 values must be within 0..1"
        }


# ONNX exports


def test_concurrent_onnx_downloads_all_succeed_and_each_model_is_exported_once(client, model_dir, monkeypatch):
    ids = [add_model(model_dir, month) for month in (1, 2, 3, 4)]
    exports = []
    real_export = export.export_onnx

    def counted_export(network, path):
        exports.append(path)
        real_export(network, path)

    monkeypatch.setattr(export, "export_onnx", counted_export)
    requests = [model_id for model_id in ids for _ in range(4)]  # 16 at once, 4 per model
    start = Barrier(len(requests))

    def download(model_id: str):
        start.wait()
        return model_id, client.get(f"/models/{model_id}/download", params={"format": "onnx"})

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(download, requests))

    assert [answer.status_code for _, answer in answers] == [200] * len(requests), [a.text for _, a in answers]
    for model_id in ids:
        exported = (model_dir / model_id / export.ONNX_FILE).read_bytes()
        assert all(answer.content == exported for m, answer in answers if m == model_id)
    assert len(exports) == len(ids)  # a request that waited for another's export of its model used that one


def test_a_delete_during_the_export_is_a_404_and_leaves_nothing_behind(client, model_dir, monkeypatch):
    model_id = add_model(model_dir)
    real_export = export.export_onnx

    def export_then_delete(network, path):
        real_export(network, path)
        assert client.delete(f"/models/{model_id}").status_code == 204  # before the export is in place

    monkeypatch.setattr(export, "export_onnx", export_then_delete)
    answer = client.get(f"/models/{model_id}/download", params={"format": "onnx"})
    assert answer.status_code == 404 and answer.json() == {"detail": f"no model {model_id!r}"}
    # Not a folder of the model's made anew to hold its export, nor a staging file left over.
    assert [path.name for path in model_dir.iterdir()] == [model_store.DEFAULT_FILE]  # naming the deleted default
    assert client.get("/models").json()["models"] == []


def test_a_delete_after_the_export_before_the_download_is_a_404(client, model_dir, monkeypatch):
    model_id = add_model(model_dir)
    real_onnx_file = export.onnx_file

    def onnx_file_then_delete(model_dir, model_id):
        path = real_onnx_file(model_dir, model_id)
        assert client.delete(f"/models/{model_id}").status_code == 204
        return path

    monkeypatch.setattr(export, "onnx_file", onnx_file_then_delete)
    answer = client.get(f"/models/{model_id}/download", params={"format": "onnx"})
    assert answer.status_code == 404 and answer.json() == {"detail": f"no model {model_id!r}"}


# A model deleted after it was looked for


def test_a_model_deleted_after_its_existence_was_checked_is_a_404_everywhere(client, model_dir, monkeypatch):
    model_id = add_model(model_dir)
    model_store.delete_model(model_dir, model_id)
    # Every check says the model is there, as each would have said just before the deletion: what follows the
    # check (reading the metadata, loading the weights, opening a file) meets a folder that has gone.
    real_exists = model_store.model_exists

    def checked_before_the_delete(directory, wanted):
        return wanted == model_id or real_exists(directory, wanted)

    monkeypatch.setattr(model_store, "model_exists", checked_before_the_delete)
    monkeypatch.setattr(inference, "model_exists", checked_before_the_delete)
    gone = {"detail": f"no model {model_id!r}"}

    for method, url, options in [
        ("GET", f"/models/{model_id}", {}),
        ("GET", f"/models/{model_id}/download", {}),
        ("GET", f"/models/{model_id}/download", {"params": {"format": "onnx"}}),
        ("POST", "/predict", {"params": {"model_id": model_id}, "json": {"pixels": PIXELS}}),
    ]:
        answer = client.request(method, url, **options)
        assert (answer.status_code, answer.json()) == (404, gone), f"{method} {url} {options}"

    answer = client.post(f"/v2/models/mnist/versions/{model_id}/infer", content=json.dumps(V2_ZEROS))
    assert (answer.status_code, answer.json()) == (404, {"error": f"no model {model_id!r}"})
    # Nothing was made in the store by the attempts (the default file names the deleted model, for the 409).
    assert [path.name for path in model_dir.iterdir()] == [model_store.DEFAULT_FILE]
