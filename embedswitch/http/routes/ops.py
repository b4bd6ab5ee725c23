"""Health, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ..._errors import CollectionNotFound
from ..bodies import JsonRoute
from ..deps import EngineDep

router = APIRouter(tags=["ops"], route_class=JsonRoute)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(engine: EngineDep) -> JSONResponse:
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
    body = {"ready": not problems, "problems": problems, "candidates": candidates}
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics")
def metrics(engine: EngineDep) -> Response:
    return Response(engine.metrics.render(), media_type="text/plain; version=0.0.4")
