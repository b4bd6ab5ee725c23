"""Gated rollouts: start, list, show, stop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..._errors import Conflict, RolloutInProgress, RolloutNotFound, VersionNotFound, VersionNotReady
from ...results import RolloutInfo
from ...specs import RolloutSpec
from .. import examples
from ..bodies import JsonRoute
from ..deps import EngineDep
from ..examples import Collection
from ..openapi import raises

router = APIRouter(tags=["rollouts"], route_class=JsonRoute)
RolloutId = Annotated[
    int, Path(description="the rollout's number in its collection (404 outside 1 to 2^63 - 1)")
]


@router.post("/v1/collections/{c}/rollouts", status_code=201)
@raises(VersionNotFound, Conflict, VersionNotReady, RolloutInProgress)
def start_rollout(
    engine: EngineDep, c: Collection, body: Annotated[RolloutSpec, examples.ROLLOUT]
) -> RolloutInfo:
    return engine.start_rollout(c, body)


@router.get("/v1/collections/{c}/rollouts")
def list_rollouts(engine: EngineDep, c: Collection) -> list[RolloutInfo]:
    return engine.list_rollouts(c)


@router.get("/v1/collections/{c}/rollouts/{id}")
@raises(RolloutNotFound)
def rollout(engine: EngineDep, c: Collection, id: RolloutId) -> RolloutInfo:
    return engine.rollout(c, id)


@router.post("/v1/collections/{c}/rollouts/{id}/stop")
@raises(RolloutNotFound, Conflict)
def stop_rollout(engine: EngineDep, c: Collection, id: RolloutId) -> RolloutInfo:
    return engine.stop_rollout(c, id)
