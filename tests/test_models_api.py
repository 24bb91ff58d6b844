"""The models endpoints, on APIs in the test process whose store the tests fill directly (no training): listing,
the default (the first model saved, then only an explicit choice; kept in the store, shared by replicas,
independent of Redis), deletion, bad ids."""

import pytest

from service.domain.model_store import CHOOSE_A_DEFAULT, DEFAULT_FILE, ModelMetadata
from tests.helpers import add_model

PIXELS = {"pixels": [[0] * 28 for _ in range(28)]}
NO_DEFAULT = {"model_id": None, "chosen": False}
NOT_YET = "no trained model yet: POST /jobs first"


@pytest.fixture
def replica(serve_api, api):
    """A second API on ``api``'s model store, with no Redis at all: its lifespan, which connects to Redis, is not run
    (and so this replica shows that the models and predictions need none)."""
    return serve_api(api.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}), lifespan=False)


def test_before_any_model_there_is_nothing_to_serve(api):
    with api.client() as client:
        assert client.get("/models").json() == {"default": {**NO_DEFAULT, "reason": NOT_YET}, "models": []}
        response = client.post("/predict", json=PIXELS)
        assert response.status_code == 409
        assert response.json() == {"detail": NOT_YET}
        assert client.post("/models/20260101T000000Z-00000000/default").status_code == 404


def test_the_first_model_saved_is_the_default_and_newer_ones_do_not_displace_it(api):
    with api.client() as client:
        assert client.post("/predict", json=PIXELS).status_code == 409
        march = add_model(api.model_dir, 3)
        january = add_model(api.model_dir, 1, optimizer="adam", learning_rate=0.01, batch_size=128, hidden_units=32)
        listing = client.get("/models").json()
        assert [m["id"] for m in listing["models"]] == [march, january]
        assert listing["default"] == {"model_id": march, "chosen": False, "reason": None}
        assert listing["models"][1] == {
            "id": january,
            "job_id": "job-1",
            "created_at": "2026-01-01T00:00:00Z",
            "test_accuracy": 0.51,
            "parameters": 5994,
            "summary": "conv 8-16 5x5 valid, dense 32-10; adam 0.01, 100 batches of 128",
        }
        assert client.post("/predict", json=PIXELS).json()["model_id"] == march

        may = add_model(api.model_dir, 5)  # as a worker would save it, while the API runs: it serves when named
        assert client.post("/predict", json=PIXELS).json()["model_id"] == march
        assert client.post("/predict", params={"model_id": may}, json=PIXELS).json()["model_id"] == may
        july = add_model(api.model_dir, 7, make_default=True)  # unless its job asks for it
        assert client.get("/models").json()["default"] == {"model_id": july, "chosen": True, "reason": None}
        assert client.post("/predict", json=PIXELS).json()["model_id"] == july
        full = client.get(f"/models/{january}").json()
    assert ModelMetadata.model_validate(full).config.hidden_units == 32 and full["versions"]["torch"]


def test_the_chosen_default_is_in_the_store_shared_by_replicas_even_without_redis(api, replica):
    january, march = add_model(api.model_dir, 1), add_model(api.model_dir, 3)
    with api.client() as client, replica.client() as other:
        assert other.post("/predict", json=PIXELS).json()["model_id"] == january
        response = client.post(f"/models/{march}/default")
        assert response.status_code == 200 and response.json() == {"model_id": march, "chosen": True, "reason": None}
        assert (api.model_dir / DEFAULT_FILE).read_text().strip() == march
        assert sorted(p.name for p in api.model_dir.iterdir()) == sorted([january, march, DEFAULT_FILE])

        add_model(api.model_dir, 5)  # a newer model does not displace a chosen default
        for serving in (client, other):
            assert serving.post("/predict", json=PIXELS).json()["model_id"] == march
            assert serving.get("/models").json()["default"] == {"model_id": march, "chosen": True, "reason": None}


def test_deleting_the_default_leaves_none_until_one_is_chosen_or_the_next_is_saved(api, replica):
    january, march = add_model(api.model_dir, 1), add_model(api.model_dir, 3)
    with api.client() as client, replica.client() as other:
        client.post(f"/models/{march}/default")
        assert other.post("/predict", json=PIXELS).json()["model_id"] == march  # now cached by the replica

        assert client.delete(f"/models/{march}").status_code == 204
        assert not (api.model_dir / march).exists()
        assert client.get(f"/models/{march}").status_code == 404
        assert client.delete(f"/models/{march}").status_code == 404
        assert other.post("/predict", params={"model_id": march}, json=PIXELS).status_code == 404
        deleted = f"no default model: the default, {march!r}, was deleted; {CHOOSE_A_DEFAULT}"
        for serving in (client, other):  # not the other model: nobody chose it
            assert serving.get("/models").json()["default"] == {**NO_DEFAULT, "reason": deleted}
            response = serving.post("/predict", json=PIXELS)
            assert response.status_code == 409 and response.json() == {"detail": deleted}
            assert serving.post("/predict", params={"model_id": january}, json=PIXELS).status_code == 200

        may = add_model(api.model_dir, 5)  # the first model saved into a store without a default becomes it
        assert other.post("/predict", json=PIXELS).json()["model_id"] == may
        assert client.get("/models").json()["default"] == {"model_id": may, "chosen": False, "reason": None}

        for model_id in (may, january):
            assert client.delete(f"/models/{model_id}").status_code == 204
        assert other.post("/predict", json=PIXELS).json() == {"detail": NOT_YET}
        assert client.get("/models").json()["models"] == []


def test_a_store_with_models_but_no_default_says_to_choose_one(api):
    """A store filled before defaults were explicit (no default file): no model is picked for the user."""
    january = add_model(api.model_dir, 1)
    (api.model_dir / DEFAULT_FILE).unlink()
    with api.client() as client:
        response = client.post("/predict", json=PIXELS)
        assert response.status_code == 409
        assert response.json() == {"detail": f"no default model yet: {CHOOSE_A_DEFAULT}"}
        assert client.post(f"/models/{january}/default").status_code == 200
        assert client.post("/predict", json=PIXELS).json()["model_id"] == january


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
