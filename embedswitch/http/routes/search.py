"""Search and recommendations, each pinned to one version end to end.

The handlers are async: a request the engine calls quick (``Engine.answers_inline``: static or
hashing models, an embedded store, no wait for ``min_seq``) runs on the event loop, since handing a
sub-millisecond call to a worker thread costs more than the call (measured: 0.23-0.45x the QPS of a
bare FastAPI app at 8 clients with the hop, 0.50-0.77x without). Anything else, such as a
transformer's encode, runs in the threadpool as a sync handler would.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ..._errors import (
    InputRejected,
    ModelUnavailable,
    NotCaughtUp,
    RecordNotFound,
    TextNotSupported,
    UnknownKind,
    VersionNotFound,
)
from ...results import BatchSearchResult, RecommendResult, SearchResult
from ...specs import BatchSearchRequest, RecommendRequest, SearchRequest
from .. import examples
from ..bodies import JsonRoute
from ..deps import EngineDep
from ..examples import Collection
from ..openapi import raises

router = APIRouter(tags=["search"], route_class=JsonRoute)


@router.post("/v1/collections/{c}/search")
@raises(
    VersionNotFound,
    RecordNotFound,
    UnknownKind,
    TextNotSupported,
    InputRejected,
    NotCaughtUp,
    ModelUnavailable,
)
async def search(
    engine: EngineDep, c: Collection, body: Annotated[SearchRequest, examples.SEARCH]
) -> SearchResult:
    if engine.answers_inline(c, body):
        return engine.search(c, body)
    return await run_in_threadpool(engine.search, c, body)


@router.post("/v1/collections/{c}/search/batch")
@raises(
    VersionNotFound,
    RecordNotFound,
    UnknownKind,
    TextNotSupported,
    InputRejected,
    NotCaughtUp,
    ModelUnavailable,
)
def search_batch(
    engine: EngineDep, c: Collection, body: Annotated[BatchSearchRequest, examples.SEARCH_BATCH]
) -> BatchSearchResult:
    return engine.search_batch(c, body)


@router.post("/v1/collections/{c}/recommend")
@raises(VersionNotFound, RecordNotFound, UnknownKind, ModelUnavailable)
async def recommend(
    engine: EngineDep, c: Collection, body: Annotated[RecommendRequest, examples.RECOMMEND]
) -> RecommendResult:
    if engine.answers_inline(c, body):
        return engine.recommend(c, body)
    return await run_in_threadpool(engine.recommend, c, body)
