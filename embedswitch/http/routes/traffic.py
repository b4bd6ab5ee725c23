"""Traffic: weights, shadow and interleave settings, promote, rollback."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import TrafficInfo
from ...specs import TrafficSpec
from ..bodies import JsonRoute
from ..deps import EngineDep

router = APIRouter(tags=["traffic"], route_class=JsonRoute)


@router.get("/v1/collections/{c}/traffic")
def traffic(engine: EngineDep, c: str) -> TrafficInfo:
    return engine.traffic(c)


@router.put("/v1/collections/{c}/traffic")
def set_traffic(engine: EngineDep, c: str, body: TrafficSpec) -> TrafficInfo:
    return engine.set_traffic(c, body)


@router.post("/v1/collections/{c}/versions/{v}/promote")
def promote(engine: EngineDep, c: str, v: str) -> TrafficInfo:
    return engine.promote(c, v)


@router.post("/v1/collections/{c}/rollback")
def rollback(engine: EngineDep, c: str) -> TrafficInfo:
    return engine.rollback(c)
