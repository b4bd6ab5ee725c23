"""Training: an ``als`` version trained on the collection's interactions and deployed as a version.

``POST /v1/collections/{c}/train`` (``embedswitch train als``) creates a ``building`` version whose
model spec carries ``trained_seq``, the change-log position whose interactions it trains on. The
training runs in the background: it reads those interactions (on items that still exist), fits
ALS with ``implicit``, loads the item factors through the precomputed-vectors path and commits the
load. The version's backfill then folds every user in from their whole history, including what
streamed in while it trained, and the version becomes ``ready``. Item deletes that stream in
meanwhile win over the load (the load is written at ``trained_seq``, older than any such delete).

A crash during training loses only the work: on restart the training starts again from the same
interactions and seed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from . import _fence, events
from .backfill.base import VectorSink
from .events import Trouble
from .models.als import train_als
from .models.specs import AlsSpec
from .store.base import Store

LOAD_BATCH = 10_000


class _Stopped(Exception):
    """Raised from the training callback to stop an engine that is closing."""


class Training:
    """Trains one ``als`` version once, then commits its vector load; see the module docstring."""

    def __init__(
        self,
        collection: str,
        version: str,
        spec: AlsSpec,
        store: Store,
        sink: VectorSink,
        on_loaded: Callable[[], None],
    ) -> None:
        """Trains ``version`` of ``collection`` on its interactions up to ``spec.trained_seq``,
        writes the item factors through ``sink`` and calls ``on_loaded`` (the commit)."""
        assert spec.trained_seq is not None
        self.collection = collection
        self.version = version
        self.spec = spec
        self._store = store
        self._sink = sink
        self._on_loaded = on_loaded
        self.phase = "training"
        self.done = 0
        self.total = spec.iterations
        self.started = time.monotonic()
        self.trouble = Trouble(store, collection, version, "training")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = _fence.thread(self._run, f"train-{self.collection}-{self.version}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()

    @property
    def rate(self) -> float:
        """Iterations per second so far."""
        return self.done / max(1e-9, time.monotonic() - self.started)

    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.done else None

    def _tick(self, iteration: int) -> None:
        self.done = iteration
        if self._stop.is_set():
            raise _Stopped

    def _run(self) -> None:
        spec = self.spec
        while not self._stop.is_set():
            try:
                self.phase, self.done, self.total, self.started = (
                    "training",
                    0,
                    spec.iterations,
                    time.monotonic(),
                )
                rows = self._store.scan_interactions(self.collection, spec.trained_seq or 0)
                factors = train_als(
                    rows,
                    factors=spec.factors,
                    regularization=spec.regularization,
                    iterations=spec.iterations,
                    alpha=spec.alpha,
                    seed=spec.seed,
                    on_iteration=self._tick,
                )
                self._load(factors.item_ids, factors.item_factors)
                self.trouble.cleared()
                events.record(
                    self._store,
                    self.collection,
                    self.version,
                    "trained",
                    {
                        "interactions": len(rows),
                        "users": len(factors.user_ids),
                        "items": len(factors.item_ids),
                    },
                )
                self._on_loaded()
                return
            except _Stopped:
                return
            except Exception as exc:  # visible in status and events; retried, since the inputs are durable
                self.trouble.failed(exc)
                self._stop.wait(5.0)

    def _load(self, item_ids: list[str], item_factors: np.ndarray) -> None:
        """Item factors written at ``trained_seq``, so an item deleted since then stays deleted."""
        self.phase, self.done, self.total, self.started = "loading", 0, len(item_ids), time.monotonic()
        seq = self.spec.trained_seq or 0
        for start in range(0, len(item_ids), LOAD_BATCH):
            ids = item_ids[start : start + LOAD_BATCH]
            self._sink.write("item", ids, item_factors[start : start + LOAD_BATCH], [seq] * len(ids))
            self.done = start + len(ids)
