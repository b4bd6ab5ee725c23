"""Records and interactions: the writes that go through the change log, and record reads."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import DeleteAck, RecordOut, WriteAck
from ...specs import InteractionIn, RecordBatch
from ..bodies import JsonRoute
from ..deps import KIND_QUERY, EngineDep

router = APIRouter(tags=["records"], route_class=JsonRoute)


@router.put("/v1/collections/{c}/records")
def upsert(engine: EngineDep, c: str, body: RecordBatch) -> WriteAck:
    return engine.upsert(c, body)


@router.get("/v1/collections/{c}/records/{id:path}")
def get_record(engine: EngineDep, c: str, id: str, kind: str = KIND_QUERY) -> RecordOut:
    return engine.get_record(c, id, kind)


@router.delete("/v1/collections/{c}/records/{id:path}")
def delete_record(engine: EngineDep, c: str, id: str, kind: str = KIND_QUERY) -> DeleteAck:
    return engine.delete(c, id, kind)


@router.post("/v1/collections/{c}/interactions")
def interactions(engine: EngineDep, c: str, body: list[InteractionIn]) -> WriteAck:
    return engine.add_interactions(c, body)
