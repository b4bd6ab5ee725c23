"""Health, readiness, metrics, and a collection's recent requests per version."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from ..._errors import CollectionNotFound
from ...metrics import RequestSeries
from ..bodies import JsonRoute
from ..deps import EngineDep
from ..examples import Collection

router = APIRouter(tags=["ops"], route_class=JsonRoute)


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always ok: the process is up and answering")


class Readiness(BaseModel):
    ready: bool = Field(description="Whether every version that serves users works")
    problems: list[str] = Field(
        description='What fails in a version that serves users, one "collection/version: error" each'
    )
    candidates: list[str] = Field(
        description="What fails in a version that serves no users: shown, but the server stays ready"
    )


@router.get("/healthz")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    responses={503: {"model": Readiness, "description": "A version that serves users is failing"}},
)
def readyz(engine: EngineDep, response: Response) -> Readiness:
    """503 while a version that serves users (weight > 0, or interleaved) has a failing applier,
    backfill or training: ``problems`` names them. A candidate's trouble is listed under
    ``candidates`` (and shows in its status and events) but leaves the server ready: pulling the
    server would take the live version down with it."""
    problems: list[str] = []
    candidates: list[str] = []
    for target in engine.list_collection_runtimes():
        try:
            serving = engine.serving(target.name)
        except CollectionNotFound:  # deleted meanwhile
            continue
        for name, problem in target.problems().items():
            found = problems if name in serving else candidates
            found.append(f"{target.name}/{name}: {problem}")
    response.status_code = 503 if problems else 200
    return Readiness(ready=not problems, problems=problems, candidates=candidates)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text format 0.0.4"}},
)
def metrics(engine: EngineDep) -> PlainTextResponse:
    return PlainTextResponse(engine.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/collections/{c}/stats")
def stats(engine: EngineDep, c: Collection) -> RequestSeries:
    """Searches and recommendations per version in 10-second buckets over the last 15 minutes:
    requests, server errors, p50 and p99 latency. Counted in memory by the process that answers,
    since it started (behind several processes, each answers for itself; ``/metrics`` has the
    same requests as Prometheus histograms)."""
    engine.collection(c)  # 404 collection_not_found
    return engine.metrics.recent.series(c)
