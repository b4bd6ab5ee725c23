"""Health, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ..bodies import JsonRoute
from ..deps import EngineDep

router = APIRouter(tags=["ops"], route_class=JsonRoute)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(engine: EngineDep) -> JSONResponse:
    problems = [
        f"{c.name}/{version}: {problem}"
        for c in engine.list_collection_runtimes()
        for version, problem in c.problems().items()
    ]
    status = 503 if problems else 200
    return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)


@router.get("/metrics")
def metrics(engine: EngineDep) -> Response:
    return Response(engine.metrics.render(), media_type="text/plain; version=0.0.4")
