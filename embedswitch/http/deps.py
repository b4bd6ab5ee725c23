"""What route handlers are given: the app's engine, and a slot for an expensive call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request

from .._errors import Busy
from ..engine import Engine
from ..specs import KIND_PATTERN

HEAVY_RETRY_AFTER_S = 5.0


async def _engine(request: Request) -> Engine:  # async: resolved on the event loop, no thread hop
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]
KIND_QUERY = Query("doc", pattern=KIND_PATTERN, description="record kind; ids are unique per (kind, id)")


class HeavySlots:
    """At most ``limit`` expensive calls at once (evaluations, and trainings, which run on after
    their 202); one more gets 503 ``busy`` instead of piling up threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._calls = threading.BoundedSemaphore(limit)

    def hold(self, engine: Engine) -> Iterator[None]:
        training = sum(
            1
            for c in engine.list_collection_runtimes()
            for v in list(c.versions.values())
            if v.training is not None and v.awaiting_vectors()
        )
        if training >= self.limit or not self._calls.acquire(blocking=False):
            raise Busy(
                f"{self.limit} expensive calls (evaluations, trainings) run already, as many as "
                "max_concurrent_heavy allows; retry later or raise that setting",
                HEAVY_RETRY_AFTER_S,
                limit=self.limit,
            )
        try:
            yield
        finally:
            self._calls.release()


def _heavy(request: Request) -> Iterator[None]:
    yield from request.app.state.heavy.hold(request.app.state.engine)


HeavySlot = Depends(_heavy)
"""Held while an expensive call runs: evaluations, and starting a training (a training still
running counts against the same limit)."""
