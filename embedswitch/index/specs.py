"""Index specs: which index type a version uses, and its parameters; one model per type.

Each type owns a small frozen model with ``extra="forbid"``; ``IndexSpec`` is their union,
told apart by ``type``. A spec without a ``type`` is ``auto``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_EF = 100_000
"""The largest HNSW search depth (``ef_construction``, ``ef_search``) a spec may ask for."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ExactSpec(_Spec):
    """Brute force over every vector: exact results, O(n) per query; right up to ~20,000 vectors."""

    type: Literal["exact"] = "exact"


class _HnswParams(_Spec):
    m: int = Field(default=16, ge=2, le=256, description="HNSW graph degree; fixed once a graph is built")
    ef_construction: int = Field(
        default=128, ge=1, le=MAX_EF, description="HNSW search depth while inserting"
    )
    ef_search: int = Field(default=64, ge=1, le=MAX_EF, description="HNSW search depth per query (recall)")
    rebuild_deleted_ratio: float = Field(
        default=0.25,
        gt=0,
        allow_inf_nan=False,
        description="rebuild the graph in the background once deleted vectors' slots pass this share "
        "of the live vectors",
    )


class HnswSpec(_HnswParams):
    """An in-process HNSW graph (hnswlib): approximate, roughly O(log n) per query."""

    type: Literal["hnsw"] = "hnsw"


class AutoSpec(_HnswParams):
    """Exact while small, converted to HNSW (with these parameters) past ``auto_threshold`` vectors."""

    type: Literal["auto"] = "auto"
    auto_threshold: int = Field(default=20_000, ge=0, description="'auto' goes HNSW past this size")


Precision = Literal["f32", "f16", "i8"]


class UsearchSpec(_HnswParams):
    """An in-process HNSW graph (usearch) storing vectors at ``precision``: ``f16`` halves the
    vectors' memory, ``i8`` quarters it (for unit-norm vectors only), at some recall; ``get``
    returns the rounded vectors."""

    type: Literal["usearch"] = "usearch"
    precision: Precision = Field(default="f16", description="how each number of a vector is stored")


IndexSpec = Annotated[AutoSpec | ExactSpec | HnswSpec | UsearchSpec, Field(discriminator="type")]
"""The index of a version, by ``type``: ``auto`` (the default), ``exact``, ``hnsw`` or ``usearch``."""

_ADAPTER: TypeAdapter[IndexSpec] = TypeAdapter(IndexSpec)
_TYPES: dict[str, type[_Spec]] = {
    "auto": AutoSpec,
    "exact": ExactSpec,
    "hnsw": HnswSpec,
    "usearch": UsearchSpec,
}


def parse_index_spec(value: Any, lenient: bool = False) -> Any:
    """``value`` with ``type`` defaulted to ``auto`` when it is a dict without one; with ``lenient``
    (specs stored by an earlier release, which kept every type's fields), also without the fields
    its type does not have. Validation itself is left to pydantic."""
    if not isinstance(value, dict):
        return value
    value = {"type": "auto", **value}
    kind = _TYPES.get(value["type"]) if isinstance(value["type"], str) else None
    if lenient and kind is not None:
        value = {key: item for key, item in value.items() if key in kind.model_fields}
    return value


def index_spec(value: Any) -> IndexSpec:
    """``value`` (a spec or a dict) as a validated ``IndexSpec``."""
    return _ADAPTER.validate_python(parse_index_spec(value))
