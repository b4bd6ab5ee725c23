"""A version at run time: its model, one index per record kind, and the applier that keeps them current.

The applier consumes the collection's change log in seq order, embeds with this version's model and
writes this version's indexes. Index writes are guarded by per-record seq, so replaying the log from
the last persisted ``applied_seq`` after a crash is a no-op for everything already applied.
Durability order: indexes checkpoint first, then ``applied_seq`` (and backfill progress) is saved,
so the saved position never runs ahead of what the indexes hold.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ._errors import RecordNotFound, UnknownKind
from .backfill import Backfill, BackfillConfig
from .index import IndexMeta, IndexSpec, VectorIndex, open_index
from .index.base import Hit
from .models import EmbeddingModel
from .models.als import AlsModel
from .models.base import UserModel
from .store.base import BackfillState, Change, Store, VersionRow
from .training import Training

log = logging.getLogger("embedswitch")

BUILDING, READY = "building", "ready"
MIN_CHUNK = 16  # texts per parallel encoding chunk, at least
GRAM_FILE = "item_gram.npy"


class Version:
    """One version of one collection, alive in this process."""

    def __init__(
        self,
        row: VersionRow,
        model: EmbeddingModel,
        index_spec: IndexSpec,
        root: Path,
        store: Store,
        wakeup: threading.Condition,
        apply_batch: int,
        checkpoint_interval_s: float,
        backfill_config: BackfillConfig,
    ) -> None:
        self.collection = row.collection
        self.name = row.name
        self.row = row
        self.model = model
        self.index_spec = index_spec
        self.root = root
        self.store = store
        self.state = row.state
        self.applied_seq = row.applied_seq
        self.caught_up = False
        self._wakeup = wakeup
        self._apply_batch = apply_batch
        self._checkpoint_interval_s = checkpoint_interval_s
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.RLock()
        self._applied = threading.Condition(self._lock)
        self._checkpoint_lock = threading.Lock()
        self.apply_lock = threading.RLock()
        self.user_model = model if isinstance(model, UserModel) and model.derives_users else None
        self.derives_users = self.user_model is not None
        self.embeds_text: bool = getattr(model, "embeds_text", True)
        self.normalized: bool = getattr(model, "normalized", True)
        self._gram: np.ndarray | None = None
        self._inflight = 0
        self._retired = False
        self._stop = threading.Event()
        self.error: str | None = None
        self.encode_workers = backfill_config.workers
        root.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in root.iterdir() if p.is_dir()):
            self.index(path.name, create=True)
        self.backfill: Backfill | None = None
        if row.backfill is not None:
            self.backfill = Backfill(self, row.backfill, backfill_config)
        self.training: Training | None = None
        if isinstance(model, AlsModel) and model.spec.trained_seq is not None and self.awaiting_vectors():
            self.training = Training(self, model.spec)
        self._thread = threading.Thread(
            target=self._run, name=f"applier-{self.collection}-{self.name}", daemon=True
        )
        self._encoders = ThreadPoolExecutor(self.encode_workers, thread_name_prefix=f"apply-{self.name}")

    def start(self) -> None:
        self._thread.start()
        state = self.backfill.state if self.backfill is not None else None
        if self.backfill is not None and state is not None and not (state.finished or state.awaiting_vectors):
            self.backfill.start()
        if self.training is not None:
            self.training.start()

    def awaiting_vectors(self) -> bool:
        """Whether this version waits for its vectors to be loaded and committed."""
        return self.backfill is not None and self.backfill.state.awaiting_vectors

    # -- indexes -----------------------------------------------------------------------------

    def index(self, kind: str, create: bool = False) -> VectorIndex | None:
        with self._lock:
            found = self._indexes.get(kind)
            if found is None and create:
                meta = IndexMeta(self.collection, self.name, kind, self.model.fingerprint, self.model.dim)
                found = open_index(self.index_spec, self.root / kind, meta)
                self._indexes[kind] = found
            return found

    def kinds(self) -> list[str]:
        with self._lock:
            return sorted(self._indexes)

    def records_by_kind(self) -> dict[str, int]:
        with self._lock:
            return {kind: len(index) for kind, index in sorted(self._indexes.items())}

    def nbytes(self) -> int:
        with self._lock:
            return sum(index.nbytes() for index in self._indexes.values())

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
                self._applied.notify_all()

    def search(self, text: str, k: int, kind: str, known_kinds: set[str]) -> list[Hit]:
        """``text`` embedded by this version's model, searched in this version's ``kind`` index."""
        query = self.model.encode([text], purpose="query")[0]
        return self.search_vector(query, k, kind, known_kinds)

    def search_vector(
        self, query: np.ndarray, k: int, kind: str, known_kinds: set[str], exclude: set[str] | None = None
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
        return index.search(query[None, :], k, exclude)[0]

    def vector(self, kind: str, id: str) -> np.ndarray:
        """This version's vector of a stored record; ``RecordNotFound`` if it has none."""
        index = self.index(kind)
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

    def wait_applied(self, seq: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._applied:
            while self.applied_seq < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._applied.wait(left)
            return True

    # -- applying the change log ----------------------------------------------------------------

    def _run(self) -> None:
        last_checkpoint = time.monotonic()
        while not self._stop.is_set():
            try:
                changes = self.store.read_log(self.collection, self.applied_seq, self._apply_batch)
                if changes:
                    self.apply(changes)
                self.caught_up = len(changes) < self._apply_batch
                if time.monotonic() - last_checkpoint >= self._checkpoint_interval_s:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
                if self.caught_up:
                    with self._wakeup:
                        self._wakeup.wait(0.2)
            except Exception as exc:  # keep serving; the error is visible in status and logs
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("applier %s/%s failed; retrying", self.collection, self.name)
                self._stop.wait(1.0)

    def apply(self, changes: list[Change]) -> None:
        """Apply log entries (in seq order) to this version's indexes."""
        with self.apply_lock:
            self._apply_records(changes)
            if self.derives_users and self.users_live():
                users = {c.id for c in changes if c.op == "interact"}
                items = [c.id for c in changes if c.kind == "item" and c.op != "interact"]
                if items:
                    users |= self.store.users_of_items(self.collection, items)
                self._write_users(sorted(users), changes[-1].seq)
        self.error = None
        with self._applied:
            self.applied_seq = changes[-1].seq
            self._applied.notify_all()

    def embeds(self, kind: str) -> bool:
        """Whether records of ``kind`` get their vector from their text: not derived users, and
        nothing for a model that embeds no text (its item vectors are loaded)."""
        return self.embeds_text and not (self.derives_users and kind == "user")

    def users_live(self) -> bool:
        """Whether derived user vectors follow the stream: once the items are backfilled."""
        return self.backfill is None or self.backfill.state.finished

    def rebuild_users(self) -> None:
        """Derive every user's vector from the items this version holds now (the backfill's last step)."""
        with self.apply_lock:
            self._write_users(self.store.interaction_users(self.collection), max(1, self.applied_seq))

    def _write_users(self, users: list[str], seq: int) -> None:
        """Each user's vector from their history over the items this version holds (a user with none
        of them loses their vector); written with ``seq``."""
        items = self.index("item")
        if not users or items is None or self.user_model is None:
            return
        index = self.index("user", create=True)
        assert index is not None
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
            index.upsert(keep_ids, np.stack(keep_vectors), [seq] * len(keep_ids))
        if drop:
            index.delete(drop, [seq] * len(drop))

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

    def _apply_records(self, changes: list[Change]) -> None:
        latest: dict[tuple[str, str], Change] = {}
        for change in changes:
            # interactions don't change record vectors; derived user vectors ignore user records;
            # a model without text keeps its loaded vectors until a delete
            if change.op == "interact" or (self.derives_users and change.kind == "user"):
                continue
            if change.op == "delete" or self.embeds(change.kind):
                latest[(change.kind, change.id)] = change
        by_kind: dict[str, list[Change]] = {}
        for change in latest.values():
            by_kind.setdefault(change.kind, []).append(change)
        for kind, group in by_kind.items():
            ups = [c for c in group if c.op == "upsert"]
            dels = [c for c in group if c.op == "delete"]
            if ups:
                vectors = self._encode([c.text or "" for c in ups])
                self.write_vectors(kind, [c.id for c in ups], vectors, [c.seq for c in ups])
            if dels:
                index = self.index(kind, create=True)
                assert index is not None
                index.delete([c.id for c in dels], [c.seq for c in dels])

    def commit_vectors(self) -> None:
        """End the vector load of a ``source="vectors"`` version: fill the gaps with the model."""
        assert self.backfill is not None
        if not self.embeds_text and self.derives_users:
            self._freeze_item_gram()
        self.backfill.state = replace(self.backfill.state, awaiting_vectors=False)
        self.checkpoint()
        self.backfill.start()

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Documents embedded in up to ``encode_workers`` parallel chunks (torch runs one thread
        per call, see ``EngineConfig.torch_threads``), in order."""
        chunks = min(self.encode_workers, len(texts) // MIN_CHUNK)
        if chunks <= 1:
            return self.model.encode(texts, purpose="document")
        size = -(-len(texts) // chunks)
        parts = [texts[i : i + size] for i in range(0, len(texts), size)]
        return np.concatenate(list(self._encoders.map(self.model.encode, parts)))

    def write_vectors(self, kind: str, ids: list[str], vectors: np.ndarray, seqs: list[int]) -> int:
        index = self.index(kind, create=True)
        assert index is not None
        written = index.upsert(ids, vectors, seqs)
        if written and kind == "item":
            self._gram = None
        return written

    # -- durability ---------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Make index state durable, then record how far it goes (see the module docstring)."""
        with self._checkpoint_lock:
            applied = self.applied_seq
            backfill = self.backfill.state if self.backfill is not None else None
            with self._lock:
                indexes = list(self._indexes.values())
            for index in indexes:
                index.checkpoint()
            state = self.state
            if state == BUILDING and (backfill is None or backfill.finished) and self.caught_up:
                state = READY
            if backfill is None or backfill.finished:
                for index in indexes:
                    index.forget_tombstones(self.row.applied_seq)
            self.store.save_version_progress(self.collection, self.name, applied, backfill, state)
            if state != self.state:
                self.store.add_event(self.collection, self.name, "ready", {"applied_seq": applied})
                log.info("version %s/%s is ready at seq %d", self.collection, self.name, applied)
            self.row = replace(self.row, applied_seq=applied, backfill=backfill, state=state)
            self.state = state

    def progress_state(self) -> BackfillState | None:
        return self.backfill.state if self.backfill is not None else None

    # -- lifecycle ----------------------------------------------------------------------------

    def retire(self, drain_timeout_s: float = 30.0) -> None:
        """Refuse new requests, wait for those in flight, stop the applier, delete the index files."""
        with self._applied:
            self._retired = True
            deadline = time.monotonic() + drain_timeout_s
            while self._inflight > 0 and time.monotonic() < deadline:
                self._applied.wait(deadline - time.monotonic())
        self.stop(checkpoint=False)
        with self._lock:
            for index in self._indexes.values():
                index.destroy()
            self._indexes.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def stop(self, checkpoint: bool = True) -> None:
        self._stop.set()
        if self.training is not None:
            self.training.stop()
        if self.backfill is not None:
            self.backfill.stop()
        with self._wakeup:
            self._wakeup.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        self._encoders.shutdown()
        if checkpoint:
            self.checkpoint()
        with self._lock:
            for index in self._indexes.values():
                index.close()

    @property
    def problem(self) -> str | None:
        """The applier's, the training's or the backfill's last error while it retries, else None."""
        training = self.training.error if self.training is not None and self.awaiting_vectors() else None
        return self.error or training or (self.backfill.error if self.backfill is not None else None)
