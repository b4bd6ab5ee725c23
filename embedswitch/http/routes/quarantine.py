"""Quarantined records of a version: list them, retry them, skip them."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import QuarantineAck, QuarantineInfo
from ...specs import QuarantineRequest
from ..deps import EngineDep

router = APIRouter(tags=["versions"])


@router.get("/v1/collections/{c}/versions/{v}/quarantine")
def quarantine(engine: EngineDep, c: str, v: str) -> QuarantineInfo:
    return engine.quarantine(c, v)


@router.post("/v1/collections/{c}/versions/{v}/quarantine/retry")
def retry_quarantined(
    engine: EngineDep, c: str, v: str, body: QuarantineRequest | None = None
) -> QuarantineAck:
    return engine.retry_quarantined(c, v, body)


@router.post("/v1/collections/{c}/versions/{v}/quarantine/skip")
def skip_quarantined(
    engine: EngineDep, c: str, v: str, body: QuarantineRequest | None = None
) -> QuarantineAck:
    return engine.skip_quarantined(c, v, body)
