"""How the console is served: from the package, with nothing loaded from elsewhere, no key needed
for the page itself, a Content-Security-Policy, and every file shipped in the wheel."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

import httpx
import pytest
from conftest import REPO, ServerThread

from embedswitch import Engine
from embedswitch.http.settings import HttpConfig
from embedswitch.http.ui import STATIC

FILES = sorted(p for p in Path(str(STATIC)).rglob("*") if p.is_file())


@pytest.fixture
def ui(engine: Engine) -> httpx.Client:
    with (
        ServerThread(engine, HttpConfig(api_keys="admin:k")) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        yield http


def test_ui_redirects_to_the_page_which_needs_no_key(ui: httpx.Client) -> None:
    moved = ui.get("/ui")
    assert moved.status_code == 308 and moved.headers["location"] == "/ui/"
    page = ui.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/app.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert ui.get("/v1/collections").status_code == 401  # the API behind it still needs the key


def test_every_file_and_module_import_is_served_from_the_server(ui: httpx.Client) -> None:
    """The page's stylesheet and scripts, and every module they import, come from /ui/ itself;
    no file names another host, so the console works offline."""
    wanted, seen = ["index.html"], set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        response = ui.get(f"/ui/{name}")
        assert response.status_code == 200, name
        text = response.text
        assert not re.search(r"\bhttps?://", text.replace("http://www.w3.org/2000/svg", "")), name
        if name.endswith(".html"):
            found = re.findall(r'(?:src|href)="([^"]+)"', text)
            wanted += [f for f in found if not f.startswith(("data:", "#"))]
        if name.endswith(".js"):
            assert response.headers["content-type"].startswith(("text/javascript", "application/javascript"))
            base = name.rsplit("/", 1)[0]
            wanted += [f"{base}/{m.removeprefix('./')}" for m in re.findall(r'from "(\./[^"]+)"', text)]
    assert seen == {str(p.relative_to(Path(str(STATIC)))) for p in FILES}  # nothing unused, nothing missing
    assert ui.get("/ui/js/nothing.js").status_code == 404


def test_the_wheel_ships_every_file_of_the_console() -> None:
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "embedswitch"
    ]
    package = REPO / "embedswitch"
    for path in FILES:
        relative = PurePosixPath(path.relative_to(package).as_posix())
        assert any(relative.match(g) for g in globs), f"{relative} is not in package-data"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_file_stays_under_600_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 600
