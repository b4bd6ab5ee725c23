"""What route handlers are given: the app's engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from ..engine import Engine
from ..specs import KIND_PATTERN


async def _engine(request: Request) -> Engine:  # async: resolved on the event loop, no thread hop
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]
KIND_QUERY = Query("doc", pattern=KIND_PATTERN, description="record kind; ids are unique per (kind, id)")
