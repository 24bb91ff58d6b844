"""The interactive API documentation works offline: `/docs` loads its script, styles and icon from the service
itself, never from a CDN, and needs no API key (like the dashboard's files)."""

import asyncio
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from service.api.app import create_app
from service.settings import Settings

SERVER = "http://testserver"  # the app itself, called in-process


class InProcessClient:
    """GETs answered by the app in this process, without a server and without its lifespan (so no Redis)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, url: str) -> httpx.Response:
        async def fetch() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=SERVER) as client:
                return await client.get(url)

        return asyncio.run(fetch())


class _References(HTMLParser):
    """What a page makes the browser fetch: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"])
        elif tag == "link" and found.get("href"):
            self.urls.append(found["href"])


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> InProcessClient:
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0",
        api_key="a-key-of-at-least-16-characters",  # the pages must open without it
        model_dir=tmp_path_factory.mktemp("models"),
        data_dir=tmp_path_factory.mktemp("data"),
    )
    return InProcessClient(create_app(settings))


def test_the_documentation_page_fetches_nothing_from_outside_the_server(client):
    answer = client.get("/docs")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    outside = [url for url in re.findall(r"https?://[^\s\"'<>)]+", answer.text) if not url.startswith(SERVER)]
    assert outside == [], f"/docs refers to other servers: {outside}"

    references = _References()
    references.feed(answer.text)
    kinds = {urlsplit(url).path.rsplit(".", 1)[-1] for url in references.urls}
    assert {"js", "css"} <= kinds, references.urls
    for url in references.urls:
        absolute = urljoin(f"{SERVER}/docs", url)
        assert absolute.startswith(SERVER + "/"), url
        asset = client.get(absolute)  # no API key
        assert asset.status_code == 200, f"{url}: {asset.status_code}"
        assert len(asset.content) > 0, url


def test_swagger_ui_is_pointed_at_the_services_own_schema(client):
    page = client.get("/docs").text
    assert "url: '/openapi.json'" in page
    assert "/docs/assets/swagger-ui-bundle.js" in page and "/docs/assets/swagger-ui.css" in page
    assert client.get("/openapi.json").status_code == 200  # open too, as before
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_the_rest_of_the_api_still_requires_the_key(client):
    assert client.get("/models").status_code == 401
