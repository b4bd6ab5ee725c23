"""The docs pages over real HTTP: Swagger UI and ReDoc load every script, style and icon from the
server itself, so they work on a host without internet access, and need no key."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import ServerThread

from embedswitch import Engine
from embedswitch.http.settings import HttpConfig


class Assets(HTMLParser):
    """Every URL a page loads by itself: scripts, stylesheets, icons, images, and ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href", "spec-url"):
            value = found.get(name)
            if value and tag in ("script", "link", "img", "redoc"):
                self.urls.append(value)


def loaded_by(page: str) -> list[str]:
    parser = Assets()
    parser.feed(page)
    return parser.urls + re.findall(r"url: '([^']+)'", page)  # the document Swagger UI fetches


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_and_everything_it_loads_come_from_the_server(engine: Engine, page: str) -> None:
    with (
        ServerThread(engine, HttpConfig(api_keys="admin:k")) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        response = http.get(page)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        urls = loaded_by(response.text)
        assert len(urls) >= 3, urls  # the script, the icon and the OpenAPI document at least
        assert "/openapi.json" in urls
        for url in urls:
            assert not urlsplit(url).netloc and url.startswith("/"), f"{page} loads {url} from elsewhere"
            asset = http.get(url)
            assert asset.status_code == 200 and asset.content, url
        assert "http://" not in response.text and "https://" not in response.text


def test_the_scripts_are_the_real_bundles(engine: Engine) -> None:
    with ServerThread(engine) as server, httpx.Client(base_url=server.url) as http:
        swagger = http.get("/docs-assets/swagger-ui-bundle.js")
        assert swagger.headers["content-type"].startswith(("text/javascript", "application/javascript"))
        assert "SwaggerUIBundle" in swagger.text[:2000] and len(swagger.content) > 500_000
        assert "Redoc" in http.get("/docs-assets/redoc.standalone.js").text[:2000]
        assert http.get("/docs-assets/nothing.js").status_code == 404
