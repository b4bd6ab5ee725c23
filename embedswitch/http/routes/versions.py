"""Versions: add, list, describe, train, vector loads, retire, events."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import EventOut, VectorAck, VersionInfo
from ...specs import TrainRequest, VectorBatch, VersionSpec
from ..bodies import JsonRoute
from ..deps import EngineDep

router = APIRouter(tags=["versions"], route_class=JsonRoute)


@router.post("/v1/collections/{c}/versions", status_code=202)
def add_version(engine: EngineDep, c: str, body: VersionSpec) -> VersionInfo:
    return engine.add_version(c, body)


@router.get("/v1/collections/{c}/versions")
def list_versions(engine: EngineDep, c: str) -> list[VersionInfo]:
    return engine.describe(c).versions


@router.get("/v1/collections/{c}/versions/{v}")
def describe_version(engine: EngineDep, c: str, v: str) -> VersionInfo:
    return engine.describe_version(c, v)


@router.post("/v1/collections/{c}/train", status_code=202)
def train(engine: EngineDep, c: str, body: TrainRequest) -> VersionInfo:
    return engine.train(c, body)


@router.put("/v1/collections/{c}/versions/{v}/vectors")
def put_vectors(engine: EngineDep, c: str, v: str, body: VectorBatch) -> VectorAck:
    return engine.put_vectors(c, v, body)


@router.post("/v1/collections/{c}/versions/{v}/vectors/commit")
def commit_vectors(engine: EngineDep, c: str, v: str) -> VersionInfo:
    return engine.commit_vectors(c, v)


@router.delete("/v1/collections/{c}/versions/{v}")
def retire(engine: EngineDep, c: str, v: str) -> dict[str, str]:
    engine.retire(c, v)
    return {"retired": v}


@router.get("/v1/collections/{c}/events")
def events(engine: EngineDep, c: str, version: str | None = None) -> list[EventOut]:
    return engine.events(c, version)
