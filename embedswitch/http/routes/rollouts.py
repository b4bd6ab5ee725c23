"""Gated rollouts: start, list, show, stop."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import RolloutInfo
from ...specs import RolloutSpec
from ..bodies import JsonRoute
from ..deps import EngineDep

router = APIRouter(tags=["rollouts"], route_class=JsonRoute)


@router.post("/v1/collections/{c}/rollouts", status_code=201)
def start_rollout(engine: EngineDep, c: str, body: RolloutSpec) -> RolloutInfo:
    return engine.start_rollout(c, body)


@router.get("/v1/collections/{c}/rollouts")
def list_rollouts(engine: EngineDep, c: str) -> list[RolloutInfo]:
    return engine.list_rollouts(c)


@router.get("/v1/collections/{c}/rollouts/{id}")
def rollout(engine: EngineDep, c: str, id: int) -> RolloutInfo:
    return engine.rollout(c, id)


@router.post("/v1/collections/{c}/rollouts/{id}/stop")
def stop_rollout(engine: EngineDep, c: str, id: int) -> RolloutInfo:
    return engine.stop_rollout(c, id)
