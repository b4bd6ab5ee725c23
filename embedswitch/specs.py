"""Validated inputs shared by the engine, the HTTP API and the client, with their documented limits."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ._errors import InvalidRequest
from .index.registry import IndexSpec
from .models.registry import ModelSpec, parse_model_spec

T = TypeVar("T", bound=BaseModel)

MAX_TEXT_CHARS = 32_768
MAX_ID_CHARS = 256
MAX_FIELDS_BYTES = 65_536
MAX_BATCH = 10_000
MAX_K = 1_000

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KIND_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Kind = Annotated[str, StringConstraints(pattern=KIND_PATTERN)]
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def check_text(text: str) -> str:
    """Non-blank and at most MAX_TEXT_CHARS characters."""
    if not text.strip():
        raise ValueError("text is empty or whitespace only; send the text to embed")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(
            f"text has {len(text)} characters, over the limit of {MAX_TEXT_CHARS}; split or truncate it"
        )
    return text


class RecordIn(_Strict):
    """One record to upsert. ``(kind, id)`` identifies it within a collection."""

    id: RecordId
    text: str
    kind: Kind = "doc"
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("id is blank; give every record a non-empty id")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return check_text(value)

    @field_validator("fields")
    @classmethod
    def _fields_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, separators=(",", ":")))
        if size > MAX_FIELDS_BYTES:
            raise ValueError(f"fields take {size} bytes as JSON, over the limit of {MAX_FIELDS_BYTES}")
        return value


class RecordBatch(_Strict):
    records: list[RecordIn] = Field(min_length=1, max_length=MAX_BATCH)


class VersionSpec(_Strict):
    """A version: a name, the model that embeds for it and the index type that stores it.

    ``source="vectors"`` is the batch deployment mode: document vectors made offline are loaded with
    ``put_vectors``; ``model`` then embeds queries and streamed records, and, once the load is
    committed, any snapshot record that got no vector.
    """

    name: Name
    model: ModelSpec
    index: IndexSpec = Field(default_factory=IndexSpec)
    source: Literal["model", "vectors"] = "model"

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> ModelSpec:
        return parse_model_spec(value)


RoutingKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class Like(_Strict):
    """A stored record whose vector (in the pinned version) is the query."""

    kind: Kind
    id: RecordId


class SearchRequest(_Strict):
    """Exactly one of ``text`` (embedded by the pinned version's model) or ``like``."""

    text: str | None = None
    like: Like | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    kind: Kind = "doc"
    version: Name | None = None
    key: RoutingKey | None = None
    min_seq: Annotated[int, Field(ge=0)] | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if (self.text is None) == (self.like is None):
            raise ValueError('give exactly one of "text" or "like": {"kind": ..., "id": ...}')
        return self


class InteractionIn(_Strict):
    """A user interacted with an item (which must exist as a record of kind ``item``)."""

    user: RecordId
    item: RecordId
    weight: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    ts: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None  # seconds; default: now


class InteractionBatch(_Strict):
    interactions: list[InteractionIn] = Field(min_length=1, max_length=MAX_BATCH)


class RecommendRequest(_Strict):
    """Items for a ``user`` (their vector in the pinned version) or like an ``item``."""

    user: RecordId | None = None
    item: RecordId | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    exclude_seen: bool = True
    key: RoutingKey | None = None
    version: Name | None = None
    fallback: Literal["popular"] | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> RecommendRequest:
        if (self.user is None) == (self.item is None):
            raise ValueError('give exactly one of "user" or "item"')
        return self


class VectorRow(_Strict):
    id: RecordId
    kind: Kind = "doc"
    vector: list[float] = Field(min_length=1, max_length=65_536)


class VectorBatch(_Strict):
    vectors: list[VectorRow] = Field(min_length=1, max_length=MAX_BATCH)


class CollectionSpec(_Strict):
    name: Name
    version: VersionSpec


class TrafficSpec(_Strict):
    weights: dict[Name, Annotated[int, Field(ge=0, le=1_000_000)]] = Field(min_length=1)


def describe_errors(exc: ValidationError) -> str:
    """One readable line per problem (at most five), each naming the field."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse(cls: type[T], data: Any) -> T:
    """``data`` validated as ``cls``; an ``InvalidRequest`` naming each bad field otherwise."""
    if isinstance(data, cls):
        return data
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc)) from None
