"""Records and interactions: the writes that go through the change log, and record reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from ..._errors import Overloaded, RecordNotFound
from ...results import DeleteAck, DeletedAck, RecordOut, RecordsOut, RecordsPageOut, WriteAck
from ...specs import DeleteWhere, InteractionIn, RecordBatch, RecordIds, RecordsPage
from .. import examples
from ..bodies import JsonRoute
from ..deps import KIND_QUERY, EngineDep
from ..examples import Collection, RecordId
from ..openapi import raises

router = APIRouter(tags=["records"], route_class=JsonRoute)


@router.put("/v1/collections/{c}/records")
@raises(Overloaded)
def upsert(engine: EngineDep, c: Collection, body: Annotated[RecordBatch, examples.RECORDS]) -> WriteAck:
    return engine.upsert(c, body)


@router.post("/v1/collections/{c}/scroll")
def scroll(engine: EngineDep, c: Collection, body: Annotated[RecordsPage, examples.SCROLL]) -> RecordsPageOut:
    return engine.records(c).page(body)


@router.post("/v1/collections/{c}/get-records")
def get_records(
    engine: EngineDep, c: Collection, body: Annotated[RecordIds, examples.RECORD_IDS]
) -> RecordsOut:
    return engine.records(c).get(body)


@router.post("/v1/collections/{c}/delete-records")
@raises(RecordNotFound, Overloaded)
def delete_records(
    engine: EngineDep, c: Collection, body: Annotated[RecordIds, examples.RECORD_IDS]
) -> DeletedAck:
    return engine.records(c).delete(body)


@router.post("/v1/collections/{c}/delete-where")
@raises(Overloaded)
def delete_where(
    engine: EngineDep, c: Collection, body: Annotated[DeleteWhere, examples.DELETE_WHERE]
) -> DeletedAck:
    return engine.records(c).delete_where(body)


@router.get("/v1/collections/{c}/records/{id:path}")
@raises(RecordNotFound)
def get_record(engine: EngineDep, c: Collection, id: RecordId, kind: str = KIND_QUERY) -> RecordOut:
    return engine.get_record(c, id, kind)


@router.delete("/v1/collections/{c}/records/{id:path}")
@raises(RecordNotFound, Overloaded)
def delete_record(engine: EngineDep, c: Collection, id: RecordId, kind: str = KIND_QUERY) -> DeleteAck:
    return engine.delete(c, id, kind)


@router.post("/v1/collections/{c}/interactions")
@raises(RecordNotFound, Overloaded)
def interactions(
    engine: EngineDep,
    c: Collection,
    body: Annotated[list[InteractionIn], examples.INTERACTIONS],
) -> WriteAck:
    return engine.add_interactions(c, body)
