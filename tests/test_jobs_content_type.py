"""POST /jobs takes its configuration as JSON: another content type (what `curl -d '{}'` sends without `-H`) is a
415 that says so, not a 422 about a "dictionary". The API in this process (`api`): its jobs go to a queue of
its own that no worker reads."""

import pytest


@pytest.fixture
def client(api):
    with api.client() as client:
        yield client


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", "application/xml"],
)
def test_a_body_that_is_not_json_is_a_415_saying_what_to_send(client, content_type):
    response = client.post("/jobs", content=b"{}", headers={"content-type": content_type})
    assert response.status_code == 415, response.text
    media_type = content_type.partition(";")[0]
    assert response.json() == {
        "detail": f"send the training configuration as JSON: Content-Type: application/json (got {media_type})"
    }


def test_a_body_without_a_content_type_is_a_415_too(client):
    response = client.post("/jobs", content=b'{"train_batches": 3}')
    assert "content-type" not in response.request.headers
    assert response.status_code == 415
    assert response.json()["detail"].endswith("(got no content type)")


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_is_taken_whatever_its_parameters(client, content_type):
    response = client.post("/jobs", content=b'{"train_batches": 3}', headers={"content-type": content_type})
    assert response.status_code == 202, response.text
    assert response.json()["config"]["train_batches"] == 3


@pytest.mark.parametrize("headers", [{}, {"content-type": "application/x-www-form-urlencoded"}])
def test_an_empty_body_still_means_the_tutorials_config(client, headers):
    response = client.post("/jobs", headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["config"]["train_batches"] == client.post("/jobs", json={}).json()["config"]["train_batches"]


def test_json_that_does_not_fit_is_still_a_422(client):
    response = client.post("/jobs", json={"learning_rate": -1})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "learning_rate"]


def test_the_schema_documents_the_json_body_and_the_415(client):
    operation = client.get("/openapi.json").json()["paths"]["/jobs"]["post"]
    assert list(operation["requestBody"]["content"]) == ["application/json"]
    assert operation["responses"]["415"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
