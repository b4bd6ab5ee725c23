"""The HTTP API (OpenAPI at ``/docs``): one ``APIRouter`` per noun in ``routes/``, over one Engine.

Handlers are sync and run in the server's threadpool. Each hands its parsed body straight to the
engine, which validates nothing twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .._version import __version__
from ..engine import Engine
from . import errors
from .routes import ROUTERS


def create_app(engine: Engine, close_engine: bool = True) -> FastAPI:
    """A FastAPI app serving ``engine``; it closes the engine on shutdown unless told not to."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_engine:
            engine.close()

    app = FastAPI(title="embedswitch", version=__version__, lifespan=lifespan)
    app.state.engine = engine
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
