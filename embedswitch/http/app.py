"""The HTTP API (OpenAPI at ``/docs``): one ``APIRouter`` per noun in ``routes/``, over one Engine.

Handlers are sync and run in the server's threadpool, except quick searches (``routes/search.py``).
Each hands its parsed body straight to the engine, which validates nothing twice. In front of every
route: ``logs.RequestLog`` (the request's id, one log line when it ends), ``guards.Guards`` (Host,
how a POST is sent, body size), then ``auth.Gate`` (API key, role, rate limit), then CORS when it
is switched on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from .._env import env_values
from .._version import __version__
from ..engine import Engine
from . import errors
from .auth import Gate, route_roles
from .guards import Guards
from .logs import RequestLog
from .routes import ROUTERS
from .settings import HttpConfig


def create_app(engine: Engine, close_engine: bool = True, config: HttpConfig | None = None) -> FastAPI:
    """A FastAPI app serving ``engine``; it closes the engine on shutdown unless told not to.
    Without a ``config``, the defaults overridden by ``EMBEDSWITCH_<FIELD>`` variables."""
    config = config or HttpConfig.model_validate(env_values(HttpConfig))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_engine:
            engine.close()

    async def gate(request: Request) -> None:
        app.state.gate.check(request)

    app = FastAPI(title="embedswitch", version=__version__, lifespan=lifespan, dependencies=[Depends(gate)])
    app.state.engine = engine
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.state.gate = Gate(config, route_roles(app))
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Requested-With"],
        )
    app.add_middleware(Guards, config=config)
    app.add_middleware(RequestLog)  # added last: outermost
    return app
