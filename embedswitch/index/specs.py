"""Index specs: which index type a version uses, and its parameters; one model per type.

Each type owns a small frozen model with ``extra="forbid"``; ``IndexSpec`` is their union,
told apart by ``type``. A spec without a ``type`` is ``auto``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

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


PGVECTOR_MAX_EF = 1000
"""pgvector's largest ``ef_construction`` and ``hnsw.ef_search``."""


class PgvectorSpec(_Spec):
    """pgvector's HNSW in the PostgreSQL store's database (serve with ``--store postgresql://...``):
    one table per (version, kind), shared by every process of the cluster. ``m`` and
    ``ef_construction`` take effect when the HNSW index is built; the rest on every search."""

    type: Literal["pgvector"] = "pgvector"
    m: int = Field(default=16, ge=2, le=100, description="HNSW graph degree (pgvector allows 2-100)")
    ef_construction: int = Field(
        default=128, ge=4, le=PGVECTOR_MAX_EF, description="HNSW search depth while inserting; >= 2 * m"
    )
    ef_search: int = Field(
        default=64,
        ge=1,
        le=PGVECTOR_MAX_EF,
        description="HNSW search depth per query (recall); raised to k + excluded ids, up to 1000",
    )
    exact_below: int = Field(
        default=10_000,
        ge=0,
        description="exact search (a sequential scan) while the table holds fewer live vectors than "
        "this; the HNSW index is built when it first holds this many",
    )

    @model_validator(mode="after")
    def _ef_construction_covers_m(self) -> PgvectorSpec:
        if self.ef_construction < 2 * self.m:
            raise ValueError(
                f"pgvector needs ef_construction >= 2 * m; got ef_construction={self.ef_construction}, "
                f"m={self.m}: raise ef_construction to {2 * self.m} or lower m"
            )
        return self


ENGINE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,15}$"
SERVER_URL_PATTERN = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class _EngineParams(_Spec):
    prefix: str = Field(
        default="es",
        pattern=ENGINE_NAME_PATTERN,
        description="first part of every collection name this server creates in the engine, so "
        "several deployments can share one engine server",
    )
    m: int = Field(default=16, ge=4, le=128, description="HNSW graph degree (server only)")
    ef_construction: int = Field(
        default=128, ge=8, le=PGVECTOR_MAX_EF, description="HNSW search depth while inserting (server only)"
    )
    ef_search: int = Field(
        default=64,
        ge=1,
        le=MAX_EF,
        description="HNSW search depth per query (server only), raised to k when k is larger",
    )
    timeout_s: float = Field(
        default=30.0, gt=0, le=600, allow_inf_nan=False, description="per request to the server"
    )


class QdrantSpec(_EngineParams):
    """Qdrant (``qdrant-client``): one collection per (version, kind) on the server at ``url``, or,
    without one, Qdrant's local mode in the data dir, which commits every point on its own and is
    for tests and demos, not serving. Qdrant holds the seq guard itself (conditional updates)."""

    type: Literal["qdrant"] = "qdrant"
    url: str | None = Field(
        default=None,
        pattern=SERVER_URL_PATTERN,
        description="the Qdrant server, e.g. http://qdrant:6333; none: local mode in the data dir",
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="the environment variable of the server that holds the Qdrant API key, read when "
        "the index opens (by default one named EMBEDSWITCH_KEY_...); the key is never stored",
    )

    @model_validator(mode="after")
    def _key_needs_server(self) -> QdrantSpec:
        _check_key_needs_server("qdrant", "api_key_env", self.api_key_env, "url", self.url)
        return self


class MilvusSpec(_EngineParams):
    """Milvus (``pymilvus``): one collection per (version, kind) on the server at ``uri``, or, without
    one, ``milvus-lite`` in the data dir (a Python reimplementation of Milvus's API, not the Milvus
    core: for tests and demos). Milvus has no conditional write, so a seq ledger beside the
    index holds the guard."""

    type: Literal["milvus"] = "milvus"
    uri: str | None = Field(
        default=None,
        pattern=SERVER_URL_PATTERN,
        description="the Milvus server, e.g. http://milvus:19530; none: milvus-lite in the data dir",
    )
    token_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="the environment variable of the server that holds the Milvus token (an API key, "
        "or user:password), read when the index opens (by default one named EMBEDSWITCH_KEY_...); "
        "the token is never stored",
    )

    @model_validator(mode="after")
    def _token_needs_server(self) -> MilvusSpec:
        _check_key_needs_server("milvus", "token_env", self.token_env, "uri", self.uri)
        return self


def _check_key_needs_server(kind: str, key: str, env: str | None, field: str, server: str | None) -> None:
    if env is not None and server is None:
        raise ValueError(
            f"{key} names the {kind} server's key, but the spec has no {field}: the embedded mode "
            f"takes no key; give the {field} of the server, or leave {key} out"
        )


IndexSpec = Annotated[
    AutoSpec | ExactSpec | HnswSpec | UsearchSpec | PgvectorSpec | QdrantSpec | MilvusSpec,
    Field(discriminator="type"),
]
"""The index of a version, by ``type``: ``auto`` (the default), ``exact``, ``hnsw``, ``usearch``,
``pgvector`` (in a PostgreSQL store's database), ``qdrant`` or ``milvus`` (in an engine of their
own)."""

_ADAPTER: TypeAdapter[IndexSpec] = TypeAdapter(IndexSpec)
_TYPES: dict[str, type[_Spec]] = {
    "auto": AutoSpec,
    "exact": ExactSpec,
    "hnsw": HnswSpec,
    "usearch": UsearchSpec,
    "pgvector": PgvectorSpec,
    "qdrant": QdrantSpec,
    "milvus": MilvusSpec,
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
