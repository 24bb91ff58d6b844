"""The client pointed at a server that is not mnist-service: a short ServiceError that says so, keeping the
HTTP status; never a page of HTML, nor a pydantic traceback."""

import json

import numpy as np
import pytest

from service.client.sdk import Client, NotFound, ServiceError
from tests.helpers import cli
from tests.stub_server import stub_server

HTML = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>"


def test_a_404_html_page_is_a_short_error_naming_the_status_and_the_content_type():
    with stub_server({}) as url, Client(url) as client, pytest.raises(ServiceError) as caught:
        client.models()
    assert caught.value.status == 404
    assert str(caught.value) == f"{url} answered 404 with text/html, not the mnist-service API: is the URL right?"


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/html; charset=utf-8", HTML),
        ("application/json", b"<html>not json</html>"),  # says JSON, is not
        ("application/json", json.dumps({"hello": "world"}).encode()),  # JSON, but not a model listing
        ("application/json", b"[1, 2, 3]"),
    ],
)
def test_a_200_that_is_not_the_apis_json_is_a_service_error(content_type, body):
    with stub_server({"/models": (200, content_type, body)}) as url, Client(url) as client:
        with pytest.raises(ServiceError) as caught:
            client.models()
    message = str(caught.value)
    assert caught.value.status == 200
    assert message.startswith(f"{url} answered 200 with ") and "not the mnist-service API" in message
    assert "<html" not in message and "validation error" not in message and "\n" not in message


def test_every_call_checks_its_answer():
    page = (200, "text/html", HTML)
    routes = dict.fromkeys(("/jobs", "/jobs/x", "/jobs/x/cancel", "/jobs/x/events", "/predict"), page)
    with stub_server(routes) as url, Client(url) as client:
        for call, args in [
            (client.train, ()),
            (client.jobs, ()),
            (client.job, ("x",)),
            (client.cancel, ("x",)),
            (client.wait, ("x",)),
            (client.predict, (np.zeros((28, 28)),)),
        ]:
            with pytest.raises(ServiceError, match="not the mnist-service API"):
                call(*args)


def test_a_5xx_that_is_not_json_is_a_short_error_too():
    page = (502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    with stub_server({"/jobs": page}) as url, Client(url) as client, pytest.raises(ServiceError) as caught:
        client.jobs()
    assert caught.value.status == 502
    assert str(caught.value).startswith(f"{url} answered 502 with text/html: a server error")
    assert "<html" not in str(caught.value) and "is the URL right?" in str(caught.value)


def test_the_apis_own_json_errors_keep_their_kind_and_detail():
    answer = json.dumps({"detail": "job x not found"}).encode()
    with stub_server({"/jobs/x": (404, "application/json", answer)}) as url, Client(url) as client:
        with pytest.raises(NotFound) as caught:
            client.job("x")
    assert caught.value.status == 404 and caught.value.detail == str(caught.value) == "job x not found"


def test_the_cli_prints_one_line_not_the_page():
    with stub_server({}) as url:
        done = cli("models", url=url, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: {url} answered 404 with text/html, not the mnist-service API: is the URL right?\n"
