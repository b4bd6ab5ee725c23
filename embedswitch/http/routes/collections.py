"""Collections: create, list, describe, delete."""

from __future__ import annotations

from fastapi import APIRouter

from ...results import CollectionInfo
from ...specs import CollectionSpec
from ..bodies import JsonRoute
from ..deps import EngineDep

router = APIRouter(tags=["collections"], route_class=JsonRoute)


@router.post("/v1/collections", status_code=201)
def create_collection(engine: EngineDep, body: CollectionSpec) -> CollectionInfo:
    return engine.create_collection(body.name, body.version)


@router.get("/v1/collections")
def list_collections(engine: EngineDep) -> list[CollectionInfo]:
    return engine.list_collections()


@router.get("/v1/collections/{c}")
def describe(engine: EngineDep, c: str) -> CollectionInfo:
    return engine.describe(c)


@router.delete("/v1/collections/{c}")
def delete_collection(engine: EngineDep, c: str) -> dict[str, str]:
    engine.delete_collection(c)
    return {"deleted": c}
