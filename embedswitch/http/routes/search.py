"""Search and recommendations, each pinned to one version end to end."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import RecommendResult, SearchResult
from ...specs import RecommendRequest, SearchRequest
from ..deps import EngineDep

router = APIRouter(tags=["search"])


@router.post("/v1/collections/{c}/search")
def search(engine: EngineDep, c: str, body: SearchRequest) -> SearchResult:
    return engine.search(c, body)


@router.post("/v1/collections/{c}/recommend")
def recommend(engine: EngineDep, c: str, body: RecommendRequest) -> RecommendResult:
    return engine.recommend(c, body)
