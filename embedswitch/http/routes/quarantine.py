"""Quarantined records of a version: list them, retry them, skip them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from ..._errors import ModelUnavailable, RecordNotFound
from ...results import QuarantineAck, QuarantineInfo
from ...specs import QuarantineRequest
from .. import examples
from ..bodies import JsonRoute
from ..deps import EngineDep
from ..examples import Collection, VersionName
from ..openapi import raises

router = APIRouter(tags=["versions"], route_class=JsonRoute)


@router.get("/v1/collections/{c}/versions/{v}/quarantine")
def quarantine(engine: EngineDep, c: Collection, v: VersionName) -> QuarantineInfo:
    return engine.quarantine(c, v)


@router.post("/v1/collections/{c}/versions/{v}/quarantine/retry")
@raises(RecordNotFound, ModelUnavailable)
def retry_quarantined(
    engine: EngineDep,
    c: Collection,
    v: VersionName,
    body: Annotated[QuarantineRequest, examples.QUARANTINE],
) -> QuarantineAck:
    return engine.retry_quarantined(c, v, body)


@router.post("/v1/collections/{c}/versions/{v}/quarantine/skip")
@raises(RecordNotFound)
def skip_quarantined(
    engine: EngineDep,
    c: Collection,
    v: VersionName,
    body: Annotated[QuarantineRequest, examples.QUARANTINE],
) -> QuarantineAck:
    return engine.skip_quarantined(c, v, body)
