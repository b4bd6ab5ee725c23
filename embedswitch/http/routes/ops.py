"""Health, readiness and metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from ..deps import EngineDep

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always ok: the process is up and answering")


class Readiness(BaseModel):
    ready: bool = Field(description="Whether every version's applier and backfill work")
    problems: list[str] = Field(description='What fails, one "collection/version: error" each')


@router.get("/healthz")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    responses={503: {"model": Readiness, "description": "A version's applier or backfill is failing"}},
)
def readyz(engine: EngineDep, response: Response) -> Readiness:
    problems = [
        f"{c.name}/{v.name}: {v.problem}"
        for c in engine.list_collection_runtimes()
        for v in c.versions.values()
        if v.problem
    ]
    response.status_code = 503 if problems else 200
    return Readiness(ready=not problems, problems=problems)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text format 0.0.4"}},
)
def metrics(engine: EngineDep) -> PlainTextResponse:
    return PlainTextResponse(engine.metrics.render(), media_type="text/plain; version=0.0.4")
