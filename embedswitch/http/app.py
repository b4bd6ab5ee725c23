"""The HTTP API: one ``APIRouter`` per noun in ``routes/``, over one Engine; its OpenAPI document at
``/openapi.json`` (``openapi.py``), read at ``/docs`` and ``/redoc`` (``docs.py``); the web console
at ``/ui`` (``ui/``).

Handlers are sync and run in the server's threadpool, except quick searches (``routes/search.py``).
Each hands its parsed body straight to the engine, which validates nothing twice. In front of every
route: ``logs.RequestLog`` (the request's id, one log line when it ends), ``guards.Guards``
(Host, body size), CORS when it is switched on, routing, ``auth.Gate`` (API key, role, rate
limit), then ``guards.json_only`` (how a POST is sent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from .._env import env_values
from .._version import __version__
from ..engine import Engine
from . import docs, errors, openapi, ui
from .auth import Gate, route_roles
from .deps import HeavySlots
from .guards import Guards, json_only
from .logs import RequestLog
from .routes import ROUTERS
from .settings import HttpConfig

DESCRIPTION = (
    "Embedding search and recommendations over versioned embeddings. Every error answers "
    "`{code, message, context?}` (`ErrorBody`); each operation lists the codes it can answer. "
    "With API keys configured, send `Authorization: Bearer <key>`."
)


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

    app = FastAPI(
        title="embedswitch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(gate), Depends(json_only)],
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.state.gate = Gate(config, route_roles(app))
    app.state.heavy = HeavySlots(config.max_concurrent_heavy)
    openapi.install(app, app.state.gate.roles)
    docs.install(app)
    ui.install(app)
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
