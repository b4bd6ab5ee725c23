"""A version at run time: its model, one index per record kind, and the workers that fill them.

A ``Version`` owns its indexes and is their only writer: the applier (``applier.py``) streams the
change log into them, the backfill (``backfill/``) the snapshot of records that existed when the
version was created, and for an ``als`` version the training (``training.py``) its item factors;
all three write through the version's seq-guarded sink (``write``/``delete``). Records its model
rejects wait in its ``Quarantine`` (``quarantine.py``); a building version with any that are not
skipped does not become ready. Requests pin a version (``try_acquire``/``release``), embed with its
model and search its indexes.

Durability order: indexes checkpoint first, then ``applied_seq`` (and backfill progress) is saved,
so the saved position never runs ahead of what the indexes hold, and replaying the log from it
after a crash is a no-op for everything already applied. A backfill page is written durably
(``durable=True``: a segment of its vectors, not a checkpoint) and its progress saved at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import _fence, events
from ._errors import InvalidRequest, LeaseLost, RecordNotFound, UnknownKind
from .applier import Applier
from .backfill import Backfill, BackfillConfig, EmbedStep, open_executor
from .events import Trouble
from .index import Allowed, IndexMeta, SearchParams, VectorIndex, open_index
from .index.access import IndexAccess
from .index.base import Hit, IndexHost
from .index.hybrid import Fusion, TextIndex, open_text_index, stored_text_kinds
from .index.registry import stored_kinds
from .models import AlsSpec, Bm25Spec, HybridSpec, ModelAccess, NoneSpec, UserModel, l2_normalize, load_model
from .models.batching import QueryBatcher
from .quarantine import Quarantine
from .results import IndexUsage, QuarantineAck
from .specs import VersionSpec
from .store.base import BackfillState, RecordKey, Store, VersionRow
from .training import Training
from .vectors import checked_vectors

BUILDING, READY = "building", "ready"
GRAM_FILE = "item_gram.npy"


@dataclass(frozen=True)
class VersionConfig:
    """How a version applies and checkpoints (from ``EngineConfig``)."""

    apply_batch: int
    checkpoint_interval_s: float
    backfill: BackfillConfig
    query_batch_wait_s: float = 0.0  # 0: queries are embedded one call each
    query_batch_max: int = 32
    access: ModelAccess = ModelAccess()  # what its model spec may reach
    index_access: IndexAccess = IndexAccess()  # what its index spec may reach
    host: IndexHost | None = None  # the shared database of server-side indexes (a PostgreSQL store)


class Version:
    """One version of one collection, alive in this process."""

    def __init__(self, row: VersionRow, spec: VersionSpec, root: Path, store: Store, config: VersionConfig):
        self.collection = row.collection
        self.name = row.name
        self.row = row
        self.spec = spec
        config.index_access.check(spec.index)
        self.model = load_model(spec.model, config.access)
        self.root = root
        self.store = store
        self.state = row.state
        self.applied_seq = row.applied_seq
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)  # notified when the last request in flight ends
        self._checkpoint_lock = threading.Lock()
        self.user_model = (
            self.model if isinstance(self.model, UserModel) and self.model.derives_users else None
        )
        self.derives_users = self.user_model is not None
        self.embeds_text = self.model.embeds_text
        self.takes_vectors = isinstance(spec.model, NoneSpec)
        """Records bring their vectors (model "none"): the applier and backfill use them."""
        self.normalized = self.model.normalized
        self._gram: np.ndarray | None = None
        self._queries: QueryBatcher | None = None
        if self.model.batches_queries and config.query_batch_wait_s > 0:
            self._queries = QueryBatcher(
                self._encode_queries, config.query_batch_wait_s, config.query_batch_max
            )
        self._inflight = 0
        self._retired = False
        self._host = config.host
        self.fence: _fence.Fence | None = None
        """Set while this process leads the version (its workers run here, under this fence)."""
        root.mkdir(parents=True, exist_ok=True)
        self.discover_kinds()
        step = self._step = EmbedStep.of(spec.model, config.access)
        self.quarantine = Quarantine(self.collection, self.name, store)
        self.applier = Applier(
            self,
            store,
            step,
            self.quarantine,
            config.apply_batch,
            config.checkpoint_interval_s,
            config.backfill.workers,
            Trouble(store, self.collection, self.name, "applier"),
        )
        self.backfill: Backfill | None = None
        if row.backfill is not None:
            bf = config.backfill
            self.backfill = Backfill(
                self.collection,
                self.name,
                row.backfill,
                store,
                self,
                self.embeds,
                step,
                lambda: open_executor(spec.executor or bf.executor, bf, spec.model, f"encode-{row.name}"),
                bf,
                self._save_backfill,
                self._finish_backfill,
                Trouble(store, self.collection, self.name, "backfill"),
                self.quarantine,
                self.own_vectors if self.takes_vectors else None,
            )
        self.training: Training | None = None
        model_spec = spec.model
        if isinstance(model_spec, AlsSpec) and model_spec.trained_seq is not None and self.awaiting_vectors():
            self.training = Training(self.collection, self.name, model_spec, store, self, self.commit_vectors)

    @property
    def lease(self) -> str:
        """The name of the cluster-wide lease whose holder runs this version's workers."""
        return f"version:{self.collection}/{self.name}"

    def start(self, epoch: int) -> None:
        """Lead the version: run its applier, backfill and training here, writing under the lease's
        ``epoch`` (a process that does not lead it only serves from it)."""
        self.fence = _fence.Fence(self.lease, epoch)
        with self._leading():
            self.store.publish_applied(self.collection, self.name, self.applied_seq)
            self.applier.start()
            state = self.backfill.state if self.backfill is not None else None
            if (
                self.backfill is not None
                and state is not None
                and not (state.finished or state.awaiting_vectors)
            ):
                self.backfill.start()
            if self.training is not None:
                self.training.start()

    def _leading(self) -> contextlib.AbstractContextManager[object]:
        fence = self.fence
        return _fence.fenced(fence.lease, fence.epoch) if fence is not None else contextlib.nullcontext()

    def follow(self, row: VersionRow) -> None:
        """Catch up with what the leading process saved and published (this one does not lead)."""
        if self.fence is not None:
            return
        published = self.store.published_applied(self.collection, self.name) or 0
        self.row = row
        self.state = row.state
        self.applied_seq = max(row.applied_seq, published, self.applied_seq)
        if self.backfill is not None and row.backfill is not None:
            self.backfill.state = row.backfill
        self.discover_kinds()

    def discover_kinds(self) -> None:
        """Open the index of every kind stored for this version (new ones another process made)."""
        kinds = stored_kinds(self.spec.index, self.root, self._host, self.collection, self.name)
        if isinstance(self.spec.model, (Bm25Spec, HybridSpec)):
            kinds += stored_text_kinds(self._host, self.collection, self.name)
        for kind in sorted(set(kinds)):
            self.index(kind, create=True)

    def awaiting_vectors(self) -> bool:
        """Whether this version waits for its vectors to be loaded and committed."""
        return self.backfill is not None and self.backfill.state.awaiting_vectors

    # -- indexes -----------------------------------------------------------------------------

    def index(self, kind: str, create: bool = False) -> VectorIndex | None:
        """The index of ``kind`` (None if none); ``create``: opened or created, then published. A
        creation inside ``Store.together`` commits with it: call ``open_indexes`` before one."""
        with self._lock:
            found = self._indexes.get(kind)
            if found is None and create:
                found = self._indexes[kind] = self._open_index(kind)
            return found

    def open_indexes(self, kinds: Sequence[str]) -> None:
        """Open the indexes of ``kinds``, the missing ones created and committed, then published."""
        for kind in kinds:
            self.index(kind, create=True)

    def _open_index(self, kind: str) -> VectorIndex:
        """The index of ``kind``: a ``TextIndex`` for a lexical version (BM25, beside the dense
        model's vector index for a hybrid), else the spec's vector index."""
        meta = IndexMeta(self.collection, self.name, kind, self.model.fingerprint, self.model.dim)
        model = self.spec.model
        if isinstance(model, Bm25Spec):
            return open_text_index(None, self.root / kind, meta, self._host, model.tokenizer, Fusion())
        if isinstance(model, HybridSpec):
            fusion = Fusion(model.fusion, model.weight, model.rrf_k, model.depth)
            return open_text_index(
                self.spec.index, self.root / kind, meta, self._host, model.lexical.tokenizer, fusion
            )
        return open_index(self.spec.index, self.root / kind, meta, self._host)

    def kinds(self) -> list[str]:
        with self._lock:
            return sorted(self._indexes)

    def records_by_kind(self) -> dict[str, int]:
        with self._lock:
            return {kind: len(index) for kind, index in sorted(self._indexes.items())}

    def nbytes(self) -> int:
        """Memory held by this version's indexes."""
        with self._lock:
            return sum(index.memory_bytes() for index in self._indexes.values())

    def usage(self) -> dict[str, IndexUsage]:
        """Per record kind: the index's type, precision, vectors, memory and checkpoint size."""
        with self._lock:
            indexes = sorted(self._indexes.items())
        return {
            kind: IndexUsage(
                type=index.index_type,
                precision=index.precision,
                vectors=len(index),
                memory_bytes=index.memory_bytes(),
                disk_bytes=index.disk_bytes(),
            )
            for kind, index in indexes
        }

    def own_disk_bytes(self) -> int:
        """Bytes of the version's files beside its indexes (a trained model's ``item_gram.npy``)."""
        try:
            with os.scandir(self.root) as entries:
                return sum(entry.stat().st_size for entry in entries if entry.is_file())
        except FileNotFoundError:  # retired meanwhile
            return 0

    # -- the sink: the only way vectors get in ------------------------------------------------

    def write(
        self,
        kind: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        seqs: Sequence[int],
        durable: bool = False,
        texts: Sequence[str] | None = None,
    ) -> int:
        """Seq-guarded upserts into the ``kind`` index; returns how many vectors changed. ``durable``
        writes survive a crash once this returns (else from the next checkpoint). ``texts``, the
        records' texts, are what a lexical version indexes (others ignore them)."""
        index = self.index(kind, create=True)
        assert index is not None
        if isinstance(index, TextIndex):
            written = index.upsert(ids, vectors, seqs, durable=durable, texts=texts)
        else:
            written = index.upsert(ids, vectors, seqs, durable=durable)
        if written and kind == "item":
            self._gram = None
        return written

    def delete(self, kind: str, ids: Sequence[str], seqs: Sequence[int]) -> int:
        """Seq-guarded deletes (tombstones) in the ``kind`` index; returns how many were present."""
        index = self.index(kind, create=True)
        assert index is not None
        return index.delete(ids, seqs)

    def seq_of(self, kind: str, id: str) -> int | None:
        index = self.index(kind)
        return index.seq_of(id) if index is not None else None

    def embeds(self, kind: str) -> bool:
        """Whether records of ``kind`` get their vector from their text: not derived users, and
        nothing for a model that embeds no text (its item vectors are loaded)."""
        return (self.embeds_text or self.takes_vectors) and not (self.derives_users and kind == "user")

    def check_vectors(self, values: Sequence[Sequence[float]] | np.ndarray, what: str) -> np.ndarray:
        """``values`` as this version's float32 vectors (unit length if its model normalises), or
        ``InvalidRequest`` naming what is wrong with them (``what``: "vectors", "the query vector")."""
        where = {"collection": self.collection, "version": self.name}
        if not self.model.dim:
            raise InvalidRequest(
                f"version {self.name!r} is BM25 alone: it has no vectors; search it by text", **where
            )
        return checked_vectors(values, what, self.model.dim, self.normalized, where)

    def own_vectors(self, blobs: Sequence[bytes]) -> np.ndarray:
        """Records' own vectors (float32 bytes, as stored), unit length if the model normalises."""
        dim = self.model.dim
        vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)
        return l2_normalize(vectors) if self.normalized else vectors.copy()

    def publish_applied(self, seq: int) -> None:
        self.store.publish_applied(self.collection, self.name, seq)

    def advance(self, seq: int) -> None:
        self.applied_seq = seq

    def wait_applied(self, seq: int, timeout_s: float) -> bool:
        """True once this version has applied ``seq`` (read-your-writes), False after the timeout."""
        if self.applied_seq >= seq:
            return True
        return self.store.wait_applied(self.collection, self.name, seq, timeout_s)

    # -- serving -----------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Count one more request in flight; False once the version is retiring."""
        with self._lock:
            if self._retired:
                return False
            self._inflight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()

    def search(
        self,
        text: str,
        k: int,
        kind: str,
        known_kinds: set[str],
        allowed: Allowed | None = None,
        params: SearchParams | None = None,
        vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """``text`` embedded by this version's model (or its ``vector``, embedded already), searched
        in this version's ``kind`` index; a lexical version searches the text itself (BM25, fused
        with the dense model's hits)."""
        index = self.index(kind)
        if vector is None and (self.model.dim or not isinstance(index, TextIndex)):
            vector = self.embed_query(text)
        if isinstance(index, TextIndex):
            return index.search_text(text, vector if self.model.dim else None, k, allowed, params)
        assert vector is not None
        return self.search_vector(vector, k, kind, known_kinds, None, allowed, params)

    def embed_query(self, text: str) -> np.ndarray:
        """The query's vector by this version's model, micro-batched with concurrent queries where
        the model gains from it (``models/batching.py``)."""
        if self._queries is not None:
            return self._queries.encode(text)
        return self._encode_queries([text])[0]

    def _encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, purpose="query")

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """The queries' vectors by this version's model, in one model batch."""
        return self._encode_queries(texts)

    def search_vector(
        self,
        query: np.ndarray,
        k: int,
        kind: str,
        known_kinds: set[str],
        exclude: set[str] | None = None,
        allowed: Allowed | None = None,
        params: SearchParams | None = None,
    ) -> list[Hit]:
        index = self.index(kind)
        if index is None:
            if kind in known_kinds:
                return []
            raise UnknownKind(
                f"collection {self.collection!r} has no records of kind {kind!r}; "
                f"known kinds: {', '.join(sorted(known_kinds))}",
                collection=self.collection,
                kind=kind,
            )
        if allowed is None and params is None:
            return index.search(query[None, :], k, exclude)[0]
        return index.search(query[None, :], k, exclude, allowed, params)[0]

    def vector(self, kind: str, id: str) -> np.ndarray:
        """This version's vector of a stored record; ``RecordNotFound`` if it has none."""
        index = self.index(kind)
        if isinstance(index, TextIndex):
            index.require_vectors()
        found = index.get([id]).get(id) if index is not None else None
        if found is None:
            if self.derives_users and kind == "user":
                fix = "post interactions of this user with items this version holds"
            elif not self.embeds_text:
                fix = "items created after this version was trained have no vector until the next retrain"
            else:
                fix = f"upsert it as a record of kind {kind!r}"
            raise RecordNotFound(
                f"version {self.name!r} of {self.collection!r} has no vector for {kind} {id!r}; "
                f"{fix} (or wait for the version to apply it)",
                collection=self.collection,
                version=self.name,
                kind=kind,
                id=id,
            )
        return found

    # -- derived user vectors ------------------------------------------------------------------

    def users_live(self) -> bool:
        """Whether derived user vectors follow the stream: once the items are backfilled."""
        return self.backfill is None or self.backfill.state.finished

    def rebuild_users(self) -> None:
        """Derive every user's vector from the items this version holds now (the backfill's last step)."""
        with self.applier.lock:
            self.write_users(self.store.interaction_users(self.collection), max(1, self.applied_seq))

    def write_users(self, users: list[str], seq: int) -> None:
        """Each user's vector from their history over the items this version holds (a user with none
        of them loses their vector); written with ``seq``."""
        items = self.index("item")
        if not users or items is None or self.user_model is None:
            return
        histories = self.store.user_histories(self.collection, users)
        keep_ids, keep_vectors, drop = [], [], []
        for user in users:
            vector = self.derive_user(items, histories.get(user, []))
            if vector is None:
                drop.append(user)
            else:
                keep_ids.append(user)
                keep_vectors.append(vector)
        if keep_ids:
            self.write("user", keep_ids, np.stack(keep_vectors), [seq] * len(keep_ids))
        if drop:
            self.delete("user", drop, [seq] * len(drop))

    def derive_user(self, items: VectorIndex, history: list[tuple[str, float, float]]) -> np.ndarray | None:
        """A user's vector from their ``(item, weight, ts)`` history over the items this version
        holds, or None when it holds none of them."""
        assert self.user_model is not None
        stored = items.get([item for item, _, _ in history])
        rows = [(item, w, ts) for item, w, ts in history if item in stored]
        if not rows:
            return None
        vectors = np.stack([stored[item] for item, _, _ in rows])
        return self.user_model.user_vector(
            [r[0] for r in rows], vectors, [r[1] for r in rows], [r[2] for r in rows], self.item_gram
        )

    def item_gram(self) -> np.ndarray:
        """``YᵀY`` over the item vectors: as committed, for a version whose item vectors are loaded
        (the trained model's; an item deleted since keeps its share until the next retrain, so a
        delete re-derives only the users who had it), else over the items held now."""
        gram = self._gram
        if gram is None:
            path = self.root / GRAM_FILE
            gram = self._gram = np.load(path) if path.exists() else self._compute_gram()
        return gram

    def _compute_gram(self) -> np.ndarray:
        items = self.index("item")
        vectors = items.get(items.ids()) if items is not None else {}
        y = np.stack(list(vectors.values())).astype(np.float64) if vectors else np.zeros((0, self.model.dim))
        return y.T @ y

    def _freeze_item_gram(self) -> None:
        """Persist ``YᵀY`` of the loaded items (written whole, then renamed, then fsynced)."""
        gram = self._gram = self._compute_gram()
        partial = self.root / (GRAM_FILE + ".partial")
        with partial.open("wb") as out:
            np.save(out, gram)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.root / GRAM_FILE)

    # -- backfill and vector loads -------------------------------------------------------------

    def _finish_backfill(self) -> None:
        """The snapshot is in: users are derived after items (every item vector is in place now,
        under the applier's lock, so a user vector never mixes two states); only then is the
        backfill finished, so a checkpoint can't call the version ready before its users are."""
        assert self.backfill is not None
        with self.applier.lock:
            if self.derives_users:
                self.rebuild_users()
            self.backfill.mark_finished()
        events.record(
            self.store, self.collection, self.name, "backfill_finished", {"done": self.backfill.state.done}
        )
        self.checkpoint()

    def _save_backfill(self, state: BackfillState) -> None:
        """Save the progress of a backfill page written durably (the runner holds its lock)."""
        row = self.row
        self.store.save_version_progress(self.collection, self.name, row.applied_seq, state, row.state)
        self.row = replace(row, backfill=state)

    def commit_vectors(self) -> None:
        """End the vector load of a ``source="vectors"`` version: fill the gaps with the model."""
        assert self.backfill is not None
        if not self.embeds_text and self.derives_users:
            self._freeze_item_gram()
        self.backfill.state = replace(self.backfill.state, awaiting_vectors=False)
        if self.fence is None:  # the leading process starts the backfill when it sees the commit
            row = self.row
            self.store.save_version_progress(
                self.collection, self.name, row.applied_seq, self.backfill.state, row.state
            )
            return
        self.checkpoint()
        with self._leading():
            self.backfill.start()

    def retry_quarantined(self, keys: Sequence[RecordKey] | None) -> QuarantineAck:
        """Embed quarantined records (``keys``, or all) again; see ``Quarantine.retry``."""
        return self.quarantine.retry(
            keys,
            lambda found: self.store.get_records(self.collection, found),
            self._step,
            self.write,
            self.seq_of,
        )

    # -- durability ---------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Make index state durable, then record how far it goes (see the module docstring)."""
        progress = self.backfill.lock if self.backfill is not None else contextlib.nullcontext()
        with self._checkpoint_lock, progress:  # a page saved meanwhile would be saved over
            applied = self.applied_seq
            backfill = self.backfill.state if self.backfill is not None else None
            with self._lock:
                indexes = list(self._indexes.values())
            for index in indexes:
                index.checkpoint()
            state = self.state
            done = (backfill is None or backfill.finished) and self.applier.caught_up
            if state == BUILDING and done and not self.quarantine.open_count():
                state = READY
            if backfill is None or backfill.finished:
                for index in indexes:
                    index.forget_tombstones(self.row.applied_seq)
            self.store.save_version_progress(self.collection, self.name, applied, backfill, state)
            if state != self.state:
                events.record(self.store, self.collection, self.name, "ready", {"applied_seq": applied})
            self.row = replace(self.row, applied_seq=applied, backfill=backfill, state=state)
            self.state = state

    # -- lifecycle ----------------------------------------------------------------------------

    def retire(self, drain_timeout_s: float = 30.0) -> None:
        """Refuse new requests, wait for those in flight, stop the workers, delete the index files."""
        with self._idle:
            self._retired = True
            self._idle.wait_for(lambda: self._inflight == 0, timeout=drain_timeout_s)
        self.stop(checkpoint=False)
        with self._lock:
            for index in self._indexes.values():
                index.destroy()
            self._indexes.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def stop(self, checkpoint: bool = True) -> None:
        if self.training is not None:
            self.training.stop()
        if self.backfill is not None:
            self.backfill.stop()
        self.applier.stop()
        if self.fence is not None:
            if checkpoint:  # unless another process leads it now, and saves its own progress
                with contextlib.suppress(LeaseLost), self._leading():
                    self.checkpoint()
            self.store.release_lease(self.lease)
            self.fence = None
        with self._lock:
            for index in self._indexes.values():
                index.close()

    @property
    def problem(self) -> str | None:
        """The applier's, the training's or the backfill's last error while it retries, else None."""
        training = self.training.trouble.error if self.training and self.awaiting_vectors() else None
        backfill = self.backfill.trouble.error if self.backfill is not None else None
        return self.applier.trouble.error or training or backfill
