"""The engine's calls that manage one version: add, train, load vectors, quarantine, wait."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from .collection import Collection
from .results import QuarantineAck, QuarantineInfo, VectorAck, VersionInfo
from .specs import (
    QuarantineRequest,
    TrainRequest,
    VectorBatch,
    VectorIds,
    VectorRow,
    VersionSpec,
    parse,
)
from .vector_load import load_array
from .version import READY


class EngineVersions(ABC):
    """Part of ``Engine``: each call finds the collection, then acts on one of its versions."""

    @abstractmethod
    def collection(self, name: str) -> Collection:
        """The open collection ``name`` (``Engine`` finds it)."""

    def add_version(self, collection: str, version: VersionSpec | dict[str, Any]) -> VersionInfo:
        """Add a version that backfills from the current records and gets no traffic until told."""
        return self.collection(collection).add_version(parse(VersionSpec, version))

    def train(self, collection: str, request: TrainRequest | dict[str, Any]) -> VersionInfo:
        """Train an ``als`` version on the interactions so far, in the background; it loads its
        item factors, folds users in and becomes ready, with no traffic until told."""
        return self.collection(collection).train(parse(TrainRequest, request))

    def put_vectors(
        self,
        collection: str,
        version: str,
        vectors: VectorBatch | Sequence[VectorRow | dict[str, Any]] | np.ndarray,
        ids: Sequence[str] = (),
        kind: str = "doc",
    ) -> VectorAck:
        """Load precomputed vectors into a version created with ``source="vectors"``: rows, or (the
        fast bulk load) a 2-D float32 array whose row ``i`` is the vector of record ``ids[i]`` of ``kind``."""
        if isinstance(vectors, np.ndarray):
            keys = parse(VectorIds, {"ids": list(ids), "kind": kind})
            target = self.collection(collection)
            return load_array(target.get_version(version), target.store, keys.kind, keys.ids, vectors)
        batch = (
            vectors if isinstance(vectors, VectorBatch) else parse(VectorBatch, {"vectors": list(vectors)})
        )
        return self.collection(collection).put_vectors(version, batch.vectors)

    def commit_vectors(self, collection: str, version: str) -> VersionInfo:
        """Finish the vector load; the model then embeds the records that got no vector."""
        return self.collection(collection).commit_vectors(version)

    def describe_version(self, collection: str, version: str) -> VersionInfo:
        return self.collection(collection).version_info(version)

    def quarantine(self, collection: str, version: str) -> QuarantineInfo:
        """The records ``version``'s model rejected, with the errors (see ``quarantine.py``)."""
        return self.collection(collection).get_version(version).quarantine.info()

    def retry_quarantined(
        self, collection: str, version: str, request: QuarantineRequest | dict[str, Any] | None = None
    ) -> QuarantineAck:
        """Embed quarantined records (all, or ``{"records": [{"id", "kind"}]}``) again from their
        stored text; those the model takes now are written and leave the quarantine."""
        keys = parse(QuarantineRequest, request or {}).keys()
        return self.collection(collection).get_version(version).retry_quarantined(keys)

    def skip_quarantined(
        self, collection: str, version: str, request: QuarantineRequest | dict[str, Any] | None = None
    ) -> QuarantineAck:
        """Let quarantined records (all, or those named) stop holding ``version`` back; they stay
        listed, without a vector, until a later write of them."""
        keys = parse(QuarantineRequest, request or {}).keys()
        return self.collection(collection).get_version(version).quarantine.skip(keys)

    def wait_ready(self, collection: str, version: str, timeout_s: float = 600.0) -> VersionInfo:
        """Block until ``version`` is ready and has applied everything written so far."""
        target = self.collection(collection)
        head = target.head_seq()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = target.get_version(version)
            if found.state == READY and found.wait_applied(head, max(0.0, deadline - time.monotonic())):
                return target.version_info(version)
            time.sleep(0.05)
        raise TimeoutError(f"version {version!r} of {collection!r} not ready after {timeout_s} s")
