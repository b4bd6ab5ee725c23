"""``auto``: an exact index that converts itself into an HNSW index once it grows past a threshold."""

from __future__ import annotations

from pathlib import Path

from embedswitch.index._local import LocalIndex
from embedswitch.index._storage import Storage
from embedswitch.index.base import IndexMeta
from embedswitch.index.exact import ExactStorage
from embedswitch.index.hnsw import HnswStorage
from embedswitch.index.specs import AutoSpec


class AutoIndex(LocalIndex):
    """An exact index that turns itself into an HNSW index once it grows past the threshold.

    The conversion is a rebuild (see ``LocalIndex``) into an HNSW graph, started by the first
    checkpoint past ``auto_threshold``: the graph is built in the background while searches and
    writes keep going to the exact index, writes made meanwhile are replayed onto it, then it takes
    over and the next checkpoint writes it. Ids, seqs and tombstones carry over. A crash before
    that checkpoint reopens the exact index, which converts again; reopened after it, the index
    is an ``HnswIndex``.
    """

    def __init__(self, spec: AutoSpec, directory: Path, meta: IndexMeta) -> None:
        self._spec = spec
        super().__init__(
            directory, meta, ExactStorage(meta.dim), rebuild_deleted_ratio=spec.rebuild_deleted_ratio
        )

    @classmethod
    def from_spec(cls, spec: AutoSpec, directory: Path, meta: IndexMeta) -> AutoIndex:
        return cls(spec, directory, meta)

    def _rebuild_into(self) -> Storage | None:
        if self.index_type == "exact" and len(self) > self._spec.auto_threshold:
            spec = self._spec
            return HnswStorage(self.meta.dim, spec.m, spec.ef_construction, spec.ef_search)
        return super()._rebuild_into()
