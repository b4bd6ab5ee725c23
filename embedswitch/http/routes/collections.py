"""Collections: create, list, describe, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from ..._errors import (
    CollectionExists,
    IndexNotAllowed,
    ModelNotAllowed,
    ModelNotInstalled,
    ModelUnavailable,
    UnknownModel,
)
from ...results import CollectionInfo
from ...specs import CollectionSpec
from .. import examples
from ..bodies import JsonRoute
from ..deps import EngineDep
from ..examples import Collection
from ..openapi import raises

router = APIRouter(tags=["collections"], route_class=JsonRoute)


@router.post("/v1/collections", status_code=201)
@raises(CollectionExists, UnknownModel, ModelNotInstalled, ModelNotAllowed, IndexNotAllowed, ModelUnavailable)
def create_collection(
    engine: EngineDep, body: Annotated[CollectionSpec, examples.CREATE_COLLECTION]
) -> CollectionInfo:
    return engine.create_collection(body.name, body.version)


@router.get("/v1/collections")
def list_collections(engine: EngineDep) -> list[CollectionInfo]:
    return engine.list_collections()


@router.get("/v1/collections/{c}")
def describe(engine: EngineDep, c: Collection) -> CollectionInfo:
    return engine.describe(c)


@router.delete("/v1/collections/{c}")
def delete_collection(engine: EngineDep, c: Collection) -> dict[str, str]:
    engine.delete_collection(c)
    return {"deleted": c}
