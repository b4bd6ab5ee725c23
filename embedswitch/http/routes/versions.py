"""Versions: add, list, describe, train, vector loads, retire, events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from ..._errors import (
    Busy,
    Conflict,
    IndexNotAllowed,
    LastVersion,
    ModelNotAllowed,
    ModelNotInstalled,
    ModelUnavailable,
    RecordNotFound,
    UnknownModel,
    VersionExists,
    VersionHasTraffic,
    VersionNotFound,
)
from ...results import EventOut, VectorAck, VersionInfo
from ...specs import TrainRequest, VectorBatch, VersionSpec
from .. import examples
from ..bodies import JsonRoute
from ..deps import EngineDep, HeavySlot
from ..examples import Collection, VersionName
from ..openapi import raises

router = APIRouter(tags=["versions"], route_class=JsonRoute)


@router.post("/v1/collections/{c}/versions", status_code=202)
@raises(VersionExists, UnknownModel, ModelNotInstalled, ModelNotAllowed, IndexNotAllowed, ModelUnavailable)
def add_version(
    engine: EngineDep, c: Collection, body: Annotated[VersionSpec, examples.ADD_VERSION]
) -> VersionInfo:
    return engine.add_version(c, body)


@router.get("/v1/collections/{c}/versions")
def list_versions(engine: EngineDep, c: Collection) -> list[VersionInfo]:
    return engine.describe(c).versions


@router.get("/v1/collections/{c}/versions/{v}")
def describe_version(engine: EngineDep, c: Collection, v: VersionName) -> VersionInfo:
    return engine.describe_version(c, v)


@router.post("/v1/collections/{c}/train", status_code=202, dependencies=[HeavySlot])
@raises(VersionExists, ModelNotInstalled, IndexNotAllowed, Busy)
def train(engine: EngineDep, c: Collection, body: Annotated[TrainRequest, examples.TRAIN]) -> VersionInfo:
    return engine.train(c, body)


@router.put("/v1/collections/{c}/versions/{v}/vectors")
@raises(RecordNotFound, Conflict)
def put_vectors(
    engine: EngineDep, c: Collection, v: VersionName, body: Annotated[VectorBatch, examples.VECTORS]
) -> VectorAck:
    return engine.put_vectors(c, v, body)


@router.post("/v1/collections/{c}/versions/{v}/vectors/commit")
@raises(Conflict)
def commit_vectors(engine: EngineDep, c: Collection, v: VersionName) -> VersionInfo:
    return engine.commit_vectors(c, v)


@router.delete("/v1/collections/{c}/versions/{v}")
@raises(VersionHasTraffic, LastVersion)
def retire(engine: EngineDep, c: Collection, v: VersionName) -> dict[str, str]:
    engine.retire(c, v)
    return {"retired": v}


@router.get("/v1/collections/{c}/events")
@raises(VersionNotFound)
def events(engine: EngineDep, c: Collection, version: str | None = None) -> list[EventOut]:
    return engine.events(c, version)
