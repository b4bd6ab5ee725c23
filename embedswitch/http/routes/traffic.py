"""Traffic: weights, shadow and interleave settings, promote, rollback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from ..._errors import NothingToRollBack, VersionNotFound, VersionNotReady
from ...results import TrafficInfo
from ...specs import TrafficSpec
from .. import examples
from ..bodies import JsonRoute
from ..deps import EngineDep
from ..examples import Collection, VersionName
from ..openapi import raises

router = APIRouter(tags=["traffic"], route_class=JsonRoute)


@router.get("/v1/collections/{c}/traffic")
def traffic(engine: EngineDep, c: Collection) -> TrafficInfo:
    return engine.traffic(c)


@router.put("/v1/collections/{c}/traffic")
@raises(VersionNotFound, VersionNotReady)
def set_traffic(
    engine: EngineDep, c: Collection, body: Annotated[TrafficSpec, examples.TRAFFIC]
) -> TrafficInfo:
    return engine.set_traffic(c, body)


@router.post("/v1/collections/{c}/versions/{v}/promote")
@raises(VersionNotReady)
def promote(engine: EngineDep, c: Collection, v: VersionName) -> TrafficInfo:
    return engine.promote(c, v)


@router.post("/v1/collections/{c}/rollback")
@raises(NothingToRollBack)
def rollback(engine: EngineDep, c: Collection) -> TrafficInfo:
    return engine.rollback(c)
