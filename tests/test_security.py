"""The optional API key and CORS, over real HTTP against the API served in the test process."""

import os
import subprocess
import sys

import pytest

KEY = "s3cret-key-for-the-tests"
# A fixed id: parallel test runners must collect the same parameters.
UNKNOWN_JOB = "7e1b8770-24f6-4cb5-877c-9d1dc4ea08d9"
PROTECTED = [
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", f"/jobs/{UNKNOWN_JOB}"),
    ("GET", f"/jobs/{UNKNOWN_JOB}/events"),
    ("GET", "/models"),
    ("POST", "/predict"),
    ("GET", "/presets"),
    ("GET", "/samples"),
]
OPEN = ["/healthz", "/readyz", "/metrics", "/"]


@pytest.fixture
def locked(serve_api):
    """An API with a key and one CORS origin (and no worker)."""
    return serve_api(api_key=KEY, cors_origins="https://ui.example")


@pytest.mark.parametrize("method, path", PROTECTED)
def test_every_resource_needs_the_key(locked, method, path):
    with locked.client() as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-key-of-some-length"},
            {"X-API-Key": KEY[:-1]},
            {"Authorization": f"Basic {KEY}"},
        ):
            response = client.request(method, path, headers=headers, json={} if method == "POST" else None)
            assert response.status_code == 401, (headers, response.text)
            assert "API key" in response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers, cookies",
    [({"Authorization": f"Bearer {KEY}"}, {}), ({"X-API-Key": KEY}, {}), ({}, {"mnist_api_key": KEY})],
)
def test_the_key_opens_them_by_header_or_cookie(locked, headers, cookies):
    with locked.client() as client:
        client.cookies.update(cookies)
        assert client.get("/jobs", headers=headers).status_code == 200
        assert client.post("/jobs", headers=headers, json={"train_batches": 1}).status_code == 202
        assert client.get("/presets", headers=headers).status_code == 200


@pytest.mark.parametrize("path", OPEN)
def test_probes_metrics_and_the_page_need_no_key(locked, path):
    with locked.client() as client:
        assert client.get(path).status_code != 401


def test_cors_only_for_configured_origins(locked, serve_api):
    with locked.client() as client:
        allowed = client.get("/healthz", headers={"Origin": "https://ui.example"})
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
    assert "access-control-allow-origin" not in other.headers
    # The default: CORS off. (Only one app at a time runs its lifespan; this one needs none to answer /healthz.)
    with serve_api(lifespan=False).client() as client:
        assert (
            "access-control-allow-origin"
            not in client.get("/healthz", headers={"Origin": "https://ui.example"}).headers
        )


def test_the_cli_sends_the_key_from_its_flag_or_environment(locked):
    def jobs(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "service", "jobs", "--url", locked.url, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            env={**{k: v for k, v in os.environ.items() if k != "MNIST_API_KEY"}, **(env or {})},
        )

    refused = jobs()
    assert refused.returncode != 0 and "API key" in refused.stderr + refused.stdout
    assert jobs("--api-key", KEY).returncode == 0
    assert jobs(env={"MNIST_API_KEY": KEY}).returncode == 0
