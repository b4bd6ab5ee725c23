"""The web console at ``/ui``: static HTML, CSS and JavaScript modules that ship in the package
(``static/``), no build step and nothing fetched from elsewhere, so it works on an offline host.

The page is a client of the JSON API: it sends the API key the user types as ``Authorization:
Bearer``, so a ``read`` key sees everything and the server refuses its actions (403). The page
itself needs no key, like ``/docs``; its answers forbid framing and any script or style from
another origin (``Content-Security-Policy``).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATH = "/ui"
STATIC = files(__name__) / "static"
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        b"frame-ancestors 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidated: a server upgrade brings its own console
]


class _Headers:
    """Adds ``HEADERS`` to every answer of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    """Serve the console at ``/ui/`` (``/ui`` redirects there)."""

    async def to_index(request: Request) -> RedirectResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}{PATH}/", status_code=308)

    app.add_route(PATH, to_index, include_in_schema=False)
    app.mount(PATH, _Headers(StaticFiles(directory=str(STATIC), html=True)), name="ui")
