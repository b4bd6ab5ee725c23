"""The vector-index seam: where the vectors of one (collection, version, kind) live and are searched.

``open_index(spec, directory, meta)`` opens an index; ``specs`` has one spec per type and
``registry`` the types, their backends and their limits.
"""

from embedswitch.index.base import Allowed, IndexMeta, SearchParams, VectorIndex
from embedswitch.index.registry import open_index
from embedswitch.index.specs import (
    AutoSpec,
    ExactSpec,
    HnswSpec,
    IndexSpec,
    MilvusSpec,
    PgvectorSpec,
    QdrantSpec,
    UsearchSpec,
    index_spec,
)

__all__ = [
    "Allowed",
    "AutoSpec",
    "ExactSpec",
    "HnswSpec",
    "IndexMeta",
    "IndexSpec",
    "MilvusSpec",
    "PgvectorSpec",
    "QdrantSpec",
    "SearchParams",
    "UsearchSpec",
    "VectorIndex",
    "index_spec",
    "open_index",
]
