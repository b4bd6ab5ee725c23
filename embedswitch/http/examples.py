"""The examples the OpenAPI document shows: path parameters and request bodies, all about one
collection, ``articles`` (records ``a1``, ``a2``, query ``q1``, items ``i1``-``i3``, user ``u1``;
versions ``v1`` and ``v2`` ready, ``v3`` of ``dim`` 8 waiting for precomputed vectors), so each one
works as it is against such a collection (``tests/http/test_openapi_conformance.py`` sends them).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Path
from fastapi.openapi.models import Example

from ..specs import MAX_BATCH

Collection = Annotated[str, Path(description="The collection's name", examples=["articles"])]
VersionName = Annotated[str, Path(description="The version's name", examples=["v2"])]
RecordId = Annotated[str, Path(description="The record's id, percent-encoded", examples=["a1"])]


def body(summary: str, value: Any, min_length: int | None = None, max_length: int | None = None) -> Any:
    """A request body parameter documented with one example."""
    example = Example(summary=summary, value=value)
    return Body(openapi_examples={"example": example}, min_length=min_length, max_length=max_length)


CREATE_COLLECTION = body(
    "a collection whose first version embeds by feature hashing",
    {"name": "notes", "version": {"name": "v1", "model": {"type": "hashing", "dim": 256}}},
)
RECORDS = body(
    "two documents and a query, with fields",
    {
        "records": [
            {"id": "a1", "text": "Vitamin D supplements and bone density", "fields": {"year": 2019}},
            {"id": "a2", "text": "Exercise improves sleep quality", "fields": {"year": 2021}},
            {"id": "q1", "kind": "query", "text": "does vitamin d help bones"},
        ]
    },
)
INTERACTIONS = body(
    "a user's click on an item",
    [{"user": "u1", "item": "i1", "weight": 1.0}],
    min_length=1,
    max_length=MAX_BATCH,
)
SEARCH = body(
    "the 3 records nearest a text, of 2020 or later, each with only its year",
    {"text": "vitamin D and bones", "k": 3, "filter": {"year": {"gte": 2020}}, "fields": ["year"]},
)
SEARCH_BATCH = body(
    "two searches pinned to one version, their texts embedded in one batch",
    {
        "searches": [
            {"text": "vitamin D and bones", "k": 3},
            {"text": "sleep", "k": 2, "filter": {"year": 2021}},
        ]
    },
)
SCROLL = body(
    "the first page of documents of 2019 or later", {"limit": 10, "filter": {"year": {"gte": 2019}}}
)
RECORD_IDS = body("two documents by id", {"ids": ["a1", "a2"]})
DELETE_WHERE = body("every document from before 2000", {"filter": {"year": {"lt": 2000}}})
RECOMMEND = body("3 items for a user", {"user": "u1", "k": 3})
ADD_VERSION = body(
    "a version with another model; it backfills in the background",
    {"name": "v4", "model": {"type": "hashing", "dim": 512, "seed": 1}},
)
TRAIN = body(
    "an ALS version trained on the interactions", {"version": "als1", "model": {"type": "als", "factors": 8}}
)
VECTORS = body(
    "one record's vector, of the version's dim",
    {"vectors": [{"id": "a1", "vector": [0.1, 0.9, 0, 0, 0.3, 0, 0, 0.2]}]},
)
TRAFFIC = body("10% of the traffic on v2", {"weights": {"v1": 90, "v2": 10}})
FEEDBACK = body(
    "a click on a hit of a search answer",
    {"request_id": "887d65f3db774ae59d6caf6c6257260c", "id": "a1", "event": "click"},
)
EVALUATE = body(
    "two versions scored on one judged query",
    {"versions": ["v1", "v2"], "queries": {"q1": "vitamin D and bones"}, "qrels": {"q1": {"a1": 1}}},
)
EVALUATE_CANDIDATE = body("the candidate against v1 on 100 logged searches", {"sample": 100, "against": "v1"})
ROLLOUT = body("to v2 in three steps", {"to": "v2", "steps": [10, 50, 100], "min_requests": 200})
QUARANTINE = body("every record the version's model rejected ({} does the same)", {})
