"""How request bodies are read: JSON parsed by pydantic-core's parser, every route alike.

FastAPI reads a body with the standard ``json`` module, which takes unpaired surrogates (text that
can't then be stored as UTF-8: a 500) and nests as deep as the interpreter's recursion allows
(deep enough to break what reads the value later, such as serialising it back: a 500 on every
read of a record whose fields nest a few hundred levels). pydantic-core's parser refuses both,
nesting past ``MAX_JSON_DEPTH`` included, and is several times faster on large batches. NaN and
Infinity still parse, so that a vector holding them is refused with a message saying so.

A body it refuses is answered 400 ``malformed_json`` with the parser's reason (``errors.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

MAX_JSON_DEPTH = 200
"""Arrays and objects nest at most about this deep in a body (pydantic-core's parser's limit)."""


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = from_json(body, allow_inf_nan=True)
            except ValueError as exc:  # FastAPI answers a JSONDecodeError as "json_invalid"
                raise json.JSONDecodeError(str(exc), "", 0) from None
        return self._json


class JsonRoute(APIRoute):
    """An API route whose body is read by ``JsonRequest``; every router of ``routes/`` uses it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_as_json_request(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))

        return read_as_json_request
