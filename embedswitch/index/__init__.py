"""The vector-index seam: where the vectors of one (collection, version, kind) live and are searched.

``open_index(IndexSpec(...), directory, meta)`` opens an embedded index; see ``registry`` for the
types and their limits.
"""

from embedswitch.index.base import IndexMeta, VectorIndex
from embedswitch.index.registry import IndexSpec, open_index

__all__ = ["IndexMeta", "IndexSpec", "VectorIndex", "open_index"]
