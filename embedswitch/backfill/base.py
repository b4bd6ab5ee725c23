"""The backfill seam: where vectors go (``VectorSink``), what embeds them (``EmbedStep``) and where
the embedding runs (``EmbedExecutor``).

The driver of a backfill (``runner.Backfill``) always runs beside the version's single writer: it
reads the record snapshot, hands pages to an executor and writes the vectors it gets back through
the version's seq-guarded sink, in order. Only the embed step travels: it is a plain, picklable
callable built from the model spec, so an executor may run it on threads here (``local``), in
other processes or on other machines; workers never write an index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from ..activity import Activity
from ..models import ModelAccess, ModelSpec, load_model, parse_model_spec
from ..models.specs import canonical_json

ExecutorName = Literal["auto", "threads", "process", "ray"]
"""Where embed steps run: ``threads`` of this process, a ``process`` pool of this machine, ``ray``
actors (a local cluster or ``ray_address``); ``auto`` is ``process`` for a model on a GPU device and
``threads`` otherwise."""


class VectorSink(Protocol):
    """Seq-guarded vector writes into one version's indexes (the version implements it).

    Callers may rely on the guard of ``VectorIndex``: a write whose seq is not newer than the last
    seq the index saw for that id (upsert or delete) is a no-op; ``write`` returns how many changed.
    A ``durable`` write survives a crash once it returns, without waiting for a checkpoint.
    ``texts`` are the records' texts, which a lexical version indexes (the others ignore them).
    """

    def write(
        self,
        kind: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        seqs: Sequence[int],
        durable: bool = False,
        texts: Sequence[str] | None = None,
    ) -> int: ...

    def seq_of(self, kind: str, id: str) -> int | None:
        """The last seq the ``kind`` index applied for ``id`` (upsert or delete), or None."""
        ...


@dataclass(frozen=True)
class EmbedStep:
    """Document texts to vectors with the model of ``spec`` (its canonical JSON).

    A plain value: equal specs give equal steps, and it pickles, so it can run in another process
    or on a Ray worker; there the model loads once per process (``load_model`` caches it). The spec
    travels, never the model. With ``access``, wherever the step runs, a spec that reaches beyond
    it raises ``ModelNotAllowed`` before the model loads.
    """

    spec: str
    access: ModelAccess | None = None

    @classmethod
    def of(cls, spec: ModelSpec, access: ModelAccess | None = None) -> EmbedStep:
        return cls(canonical_json(spec), access)

    def model_spec(self) -> ModelSpec:
        return parse_model_spec(json.loads(self.spec))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        model = load_model(self.model_spec(), self.access)
        return model.encode(list(texts), purpose="document")


class EmbedExecutor(Protocol):
    """Runs embed steps. ``submit`` returns at once; the future holds ``step(texts)`` or its error."""

    def submit(self, step: EmbedStep, texts: list[str]) -> Future[np.ndarray]: ...

    def close(self) -> None:
        """Stop; work not started yet is cancelled."""
        ...


@dataclass(frozen=True)
class BackfillConfig:
    batch: int = 256
    workers: int = 1
    max_rate: float | None = None  # records per second; None = as fast as the yield allows
    max_tokens_per_min: float | None = None  # estimated tokens (models/tokens.py) per minute; None = no cap
    yield_max_wait_s: float = 0.05
    nice: int = 10
    idle: bool = True  # SCHED_IDLE on top of ``nice`` (activity.lower_priority)
    activity: Activity = field(default_factory=Activity)
    executor: ExecutorName = "auto"
    ray_address: str | None = None  # None: a local Ray cluster, started on first use
    torch_threads: int | None = 1  # intra-op threads of a worker process or actor
