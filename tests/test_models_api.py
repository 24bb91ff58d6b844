"""The models endpoints, on APIs in the test process whose store the tests fill directly (no training): listing,
the default (kept in the store, shared by replicas, independent of Redis), deletion, bad ids."""

import pytest

from service.domain.model_store import DEFAULT_FILE, ModelMetadata
from tests.helpers import add_model

PIXELS = {"pixels": [[0] * 28 for _ in range(28)]}


@pytest.fixture
def replica(serve_api, api):
    """A second API on ``api``'s model store, with no Redis at all: its lifespan, which connects to Redis, is not run
    (and so this replica shows that the models and predictions need none)."""
    return serve_api(api.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}), lifespan=False)


def test_before_any_model_there_is_nothing_to_serve(api):
    with api.client() as client:
        assert client.get("/models").json() == {"default": {"model_id": None, "chosen": False}, "models": []}
        response = client.post("/predict", json=PIXELS)
        assert response.status_code == 409
        assert response.json() == {"detail": "no trained model yet: POST /jobs first"}
        assert client.post("/models/20260101T000000Z-00000000/default").status_code == 404


def test_models_are_listed_newest_first_the_newest_serves_and_new_ones_count_at_once(api):
    with api.client() as client:
        assert client.post("/predict", json=PIXELS).status_code == 409
        march = add_model(api.model_dir, 3)
        january = add_model(api.model_dir, 1, optimizer="adam", learning_rate=0.01, batch_size=128, hidden_units=32)
        listing = client.get("/models").json()
        assert [m["id"] for m in listing["models"]] == [march, january]
        assert listing["default"] == {"model_id": march, "chosen": False}
        assert listing["models"][1] == {
            "id": january,
            "job_id": "job-1",
            "created_at": "2026-01-01T00:00:00Z",
            "test_accuracy": 0.51,
            "parameters": 5994,
            "summary": "conv 8-16 5x5 valid, dense 32-10; adam 0.01, 100 batches of 128",
        }
        assert client.post("/predict", json=PIXELS).json()["model_id"] == march

        may = add_model(api.model_dir, 5)  # as a worker would save it, while the API runs
        assert client.post("/predict", json=PIXELS).json()["model_id"] == may
        full = client.get(f"/models/{january}").json()
    assert ModelMetadata.model_validate(full).config.hidden_units == 32 and full["versions"]["torch"]


def test_the_chosen_default_is_in_the_store_shared_by_replicas_even_without_redis(api, replica):
    january, march = add_model(api.model_dir, 1), add_model(api.model_dir, 3)
    with api.client() as client, replica.client() as other:
        assert other.post("/predict", json=PIXELS).json()["model_id"] == march
        response = client.post(f"/models/{january}/default")
        assert response.status_code == 200 and response.json() == {"model_id": january, "chosen": True}
        assert (api.model_dir / DEFAULT_FILE).read_text().strip() == january
        assert sorted(p.name for p in api.model_dir.iterdir()) == sorted([january, march, DEFAULT_FILE])

        add_model(api.model_dir, 5)  # a newer model does not displace a chosen default
        for serving in (client, other):
            assert serving.post("/predict", json=PIXELS).json()["model_id"] == january
            assert serving.get("/models").json()["default"] == {"model_id": january, "chosen": True}


def test_deleting_a_model_everywhere_and_the_default_falling_back_to_the_newest(api, replica):
    january, march = add_model(api.model_dir, 1), add_model(api.model_dir, 3)
    with api.client() as client, replica.client() as other:
        client.post(f"/models/{january}/default")
        assert other.post("/predict", json=PIXELS).json()["model_id"] == january  # now cached by the replica

        assert client.delete(f"/models/{january}").status_code == 204
        assert not (api.model_dir / january).exists()
        assert client.get(f"/models/{january}").status_code == 404
        assert client.delete(f"/models/{january}").status_code == 404
        assert other.post("/predict", params={"model_id": january}, json=PIXELS).status_code == 404
        for serving in (client, other):
            assert serving.get("/models").json()["default"] == {"model_id": march, "chosen": False}
            assert serving.post("/predict", json=PIXELS).json()["model_id"] == march

        assert client.delete(f"/models/{march}").status_code == 204
        assert other.post("/predict", json=PIXELS).status_code == 409
        assert client.get("/models").json()["models"] == []


BAD_IDS = [
    "..%2F..%2Fetc",
    "%2e%2e",
    "..%2Fsecret",
    "%2Fetc%2Fpasswd",
    "x" * 300,
    "20260101T000000Z-0000000g",
    "20260101T000000Z-00000000%0A",
    "default-model",
]


def test_ids_that_are_no_model_id_reach_nothing(api):
    add_model(api.model_dir, 1)
    secret = api.model_dir.parent / "secret"  # what a path traversal would find
    secret.mkdir()
    (secret / "metadata.json").write_text("{}")
    with api.client() as client:
        for model_id in BAD_IDS:
            for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/default")]:
                response = client.request(method, f"/models/{model_id}{path}")
                assert response.status_code in (404, 422), (model_id, method, response.text)
                assert response.json()["detail"]
            response = client.post(f"/predict?model_id={model_id}", json=PIXELS)
            assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "model_id"]
        assert len(client.get("/models").json()["models"]) == 1
    assert (secret / "metadata.json").exists()
