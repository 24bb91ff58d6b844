"""Each place where the schema and the API disagreed, as schemathesis's full run (tests/test_fuzz.py) found them,
pinned as a plain request: what the schema admits is accepted, what it refuses is refused, and never a 500."""

import base64
import re

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.training_config import PRESETS
from service.schemas.predictions import BASE64_PATTERN, ImageInput
from tests.helpers import add_model


@pytest.mark.parametrize(
    "config, field",
    [
        ({"preset": {}}, "preset"),  # was a 500: a dict cannot be looked up among the presets
        ({"preset": "nonsense"}, None),  # the schema lists the presets
        ({"make_default": 0}, "make_default"),  # JSON's 0 is not a boolean, though pydantic's lax mode reads it so
        ({"batch_norm": "yes"}, "batch_norm"),
        ({"kernel_size": "5"}, "kernel_size"),  # a string is not a number
        ({"kernel_size": True}, "kernel_size"),
        ({"augmentation": {"noise": False}}, "augmentation"),
        ({"train_batches": 30, "epochs": 1}, None),  # the schema says "not both"
        ({"train_batches": None}, None),  # nor neither
        ({"target_accuracy": 0.9}, None),  # a target needs a holdout
        ({"conv_filters": [8, 16, 32], "kernel_size": 5}, None),  # three layers of 5x5 leave nothing of 28x28
    ],
)
def test_a_configuration_the_schema_refuses_is_a_422(api, config, field):
    with api.client() as client:
        answer = client.post("/jobs", json=config)
    assert answer.status_code == 422, answer.text
    if field:
        assert answer.json()["detail"][0]["loc"][:2] == ["body", field]


@pytest.mark.parametrize(
    "config",
    [{"kernel_size": 5.0, "conv_filters": [8.0, 16]}, {"train_batches": None, "epochs": 0.5}, {"dropout": 0}],
)
def test_a_configuration_the_schema_admits_is_accepted(api, config):
    with api.client() as client:
        assert client.post("/jobs", json=config).status_code == 202


def test_a_body_that_is_not_utf8_is_the_400_the_schema_declares(api):
    with api.client() as client:
        answer = client.post("/jobs", content=b'{"seed": "\xff"}', headers={"content-type": "application/json"})
        declared = client.get("/openapi.json").json()["paths"]["/jobs"]["post"]["responses"]
    assert answer.status_code == 400
    assert "400" in declared


def test_the_schema_states_the_rules_between_fields(api):
    with api.client() as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["TrainingConfig"]
    assert schema["properties"]["preset"]["enum"] == list(PRESETS)
    rules = schema["allOf"]
    assert {"not": {"properties": {"train_batches": {"type": "integer"}, "epochs": {"type": "number"}},
                    "required": ["train_batches", "epochs"]}} in rules  # fmt: skip
    assert any(rule.get("then") == {"properties": {"conv_filters": {"maxItems": 2}}} for rule in rules)


@settings(max_examples=500, database=None)
@given(
    st.one_of(
        st.text(alphabet="AZaz09+/= \n\t\r:,;d±", max_size=16),
        st.binary(min_size=1, max_size=12).map(lambda data: base64.encodebytes(data).decode()),
        st.binary(min_size=1, max_size=12).map(lambda data: "data:image/png;base64," + base64.b64encode(data).decode()),
    )
)
def test_the_base64_pattern_admits_exactly_what_is_decoded(text):
    admitted = re.search(BASE64_PATTERN, text) is not None
    try:
        ImageInput(image=text)
        decoded = True
    except ValueError:
        decoded = False
    assert admitted == decoded


def test_a_picture_in_base64_with_a_non_ascii_character_is_a_422_naming_the_field(serve_api, tmp_path):
    add_model(tmp_path / "models")
    with serve_api().client() as client:
        answer = client.post("/predict", json={"image": "\u00b1z"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "image", "image"]


def test_a_405_lists_every_method_of_the_path(api):
    with api.client() as client:
        assert client.request("OPTIONS", "/jobs").headers["Allow"] == "GET, POST"
        assert client.request("PUT", "/models/20260101T000000Z-00000000").headers["Allow"] == "GET, DELETE"


def test_an_event_stream_without_last_event_id_starts_from_the_first_point(api):
    with api.client() as client:
        job = client.post("/jobs", json={}).json()
        client.post(f"/jobs/{job['id']}/cancel")
        header = client.get("/openapi.json").json()["paths"]["/jobs/{job_id}/events"]["get"]["parameters"][1]
        with client.stream("GET", f"/jobs/{job['id']}/events") as events:
            assert events.status_code == 200
    # A header is text: its schema admits no `null` (which would arrive as the text "null").
    assert {key: header["schema"][key] for key in ("type", "pattern", "default")} == {
        "type": "string",
        "pattern": r"^\d{1,19}-\d{1,19}$",
        "default": "0-0",
    }


@pytest.mark.parametrize("scale, value, accepted", [("1", 2.0, False), ("1", 1.0, True), ("255", 2.0, True)])
def test_pixels_on_the_0_to_1_scale_are_bounded_by_1_in_the_schema_too(serve_api, tmp_path, scale, value, accepted):
    """Was a valid case refused: with scale "1" a value of 145.6 was within the schema's 0..255 but a 422."""
    add_model(tmp_path / "models")
    body = {"instances": [{"pixels": [value] * 784, "scale": scale}]}
    with serve_api().client() as client:
        answer = client.post("/predict", json=body)
        schema = client.get("/openapi.json").json()
    request_schema = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**request_schema, "components": schema["components"]})
    assert validator.is_valid(body) == accepted
    assert answer.status_code == (200 if accepted else 422), answer.text
