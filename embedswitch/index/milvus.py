"""The ``milvus`` index: the vectors of one (collection, version, kind) in a collection of a Milvus
server (``uri``), or of milvus-lite in the index's directory when no uri is given.

Beyond ``VectorIndex``'s promises:

- one Milvus collection per (collection, version, kind), named as ``index/_engines.py`` says, with
  the fields ``key`` (the primary key: a hash of the record id, so no id ever reaches a Milvus
  expression), ``rid`` (the record id), ``seq`` and ``v`` (the vector, scored by inner product),
  the meta that built it in a collection property (another fingerprint or dim is an
  ``IndexMismatch``), and Strong consistency, so a read sees every write acknowledged before it;
- Milvus has no conditional write, so the seq guard is a ledger (``index/_ledger.py``) with the last
  seq per id, tombstones included: a SQLite file in the index's directory, or, with a shared
  PostgreSQL store (a ``host``), tables in its database. Under the index's write lock a write
  records the seqs that pass the ledger's guard, writes those to Milvus, then confirms them; a
  crash in between leaves unconfirmed rows, settled to what Milvus holds (by ``open`` for a SQLite
  ledger, by the next write for a shared one, since another process may be mid-write when one
  opens), so the version's replay from its applied position re-applies what Milvus missed.
  Correctness rests on one writer per index: this process's write lock, and the version's single
  leader (a shared ledger's steps are fenced by its lease). Milvus keeps only live vectors (a
  delete removes the entity; its tombstone is in the ledger);
- a write is in Milvus's write-ahead log when it returns (``durable`` always holds: on a server
  against any crash; in milvus-lite, whose log is synced to disk at close, against a crash of the
  process, and against a power cut from the next ``checkpoint``, which flushes it into segment
  files; a write lost anyway is settled at open, as above). Bulk writes go in batches of 256 rows;
- scores are Milvus's inner products in float32; ``get`` returns vectors exactly as written.

Limits:

- A Milvus server searches with HNSW (``m``, ``ef_construction``; ``ef_search`` raised to the
  number of hits asked for); milvus-lite searches exactly (FLAT).
- milvus-lite (no uri) is a Python reimplementation of Milvus's API, not the Milvus core: for tests
  and demos, never for serving. Its calls take turns.
- With a shared store only a Milvus server (``uri``): milvus-lite's file is one process's
  (``registry.check_placement``). Milvus's own writes are not in the database's transactions: a
  leader deposed between recording a write and sending it still sends that one write.
- A search excluding ids asks Milvus for ``k`` more hits per excluded id (at most 16,384, Milvus's
  limit) and drops them, so excluding thousands of ids can return fewer than ``k``.
- ``memory_bytes`` is 0 for a server and the vectors' bytes for milvus-lite; ``disk_bytes`` counts
  the files in the index's directory (milvus-lite's and the ledger), not a server's segments.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from embedswitch.index import _engines as engines
from embedswitch.index._checks import check_k, check_queries, check_seqs, check_vectors
from embedswitch.index._engines import Seen
from embedswitch.index._ids import IdMap
from embedswitch.index._ledger import PgSeqLedger, SeqLedger
from embedswitch.index.access import engine_key
from embedswitch.index.base import Allowed, Hit, IndexHost, IndexMeta, SearchParams
from embedswitch.index.specs import MilvusSpec

MAX_TOPK = 16_384
"""The most hits Milvus returns for one query."""
LITE_FILE = "milvus.db"
LEDGER_FILE = "ledger.db"
META_PROPERTY = "embedswitch.meta"
"""The collection property that holds the meta that built it, as JSON."""
_RID_BYTES = 1024  # a record id is at most 256 characters


def key_of(record_id: str) -> str:
    """The Milvus primary key of a record id: 32 hex digits."""
    return hashlib.blake2b(record_id.encode(), digest_size=16).hexdigest()


class MilvusIndex(engines.EngineIndex[MilvusClient]):
    """A ``VectorIndex`` in a Milvus collection, guarded by a seq ledger; see the module docstring."""

    index_type = "milvus"
    engine = "Milvus"
    errors = (MilvusException, OSError)

    def __init__(
        self,
        client: MilvusClient,
        name: str,
        meta: IndexMeta,
        spec: MilvusSpec,
        directory: Path,
        ledger: SeqLedger | PgSeqLedger,
    ) -> None:
        """Use the collection ``name`` that ``open`` found or created, guarded by ``ledger``."""
        super().__init__(client, name, meta, spec.uri, spec.uri or str(directory))
        self.spec = spec
        self.directory = directory
        self._ledger = ledger

    @classmethod
    def from_spec(
        cls, spec: MilvusSpec, directory: Path, meta: IndexMeta, host: IndexHost | None = None
    ) -> MilvusIndex:
        return cls.open(meta, Path(directory), spec, host)

    @classmethod
    def stored_kinds(
        cls, spec: MilvusSpec, directory: Path, collection: str, version: str, host: IndexHost | None = None
    ) -> list[str]:
        """The record kinds that have an index of this version: those with a ledger in ``host``'s
        database, or (no host) the subdirectories of ``directory`` (each holds a kind's ledger, and
        for milvus-lite its files)."""
        if host is not None:
            return PgSeqLedger.stored_kinds(host, collection, version)
        return sorted(p.name for p in directory.iterdir() if p.is_dir()) if directory.is_dir() else []

    @classmethod
    def open(
        cls, meta: IndexMeta, directory: Path, spec: MilvusSpec | None = None, host: IndexHost | None = None
    ) -> MilvusIndex:
        """Open the index of ``meta`` on ``spec.uri``'s server, or in milvus-lite in ``directory``,
        creating its collection the first time; its ledger is in ``host``'s database, or without
        one in ``directory``, where any write a crash cut short is settled now to what Milvus holds
        (a shared ledger is settled by its next write: only the version's leader writes)."""
        spec = spec or MilvusSpec()
        name = engines.collection_name(spec.prefix, meta.collection, meta.version, meta.kind)
        directory.mkdir(parents=True, exist_ok=True)
        with cls.translating(f"index {meta.collection}/{meta.version}/{meta.kind}", meta, spec.uri):
            if spec.uri is not None:
                client = MilvusClient(uri=spec.uri, token=engine_key(spec) or "", timeout=spec.timeout_s)
            else:
                client = MilvusClient(uri=str(directory / LITE_FILE))
            try:
                _ensure_collection(client, name, meta, spec)
                ledger = PgSeqLedger(host, meta) if host is not None else SeqLedger(directory / LEDGER_FILE)
            except BaseException:
                client.close()
                raise
        index = cls(client, name, meta, spec, directory, ledger)
        try:
            if not ledger.shared:
                index._settle()
        except BaseException:
            index.close()
            raise
        return index

    # --- writes ---------------------------------------------------------------------------------

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, seqs: Sequence[int], durable: bool = False
    ) -> int:
        """Store each vector under its id unless the id has seen a seq >= its seq; returns how many.
        In Milvus's log (durable) when it returns, whatever ``durable`` says."""
        vecs = check_vectors(vectors, len(ids), self.meta, what="vectors")
        latest = IdMap.latest_per_id(ids, check_seqs(ids, seqs))
        self._check_open()
        if not latest:
            return 0
        rows = {id_: vecs[row] for id_, (row, _) in latest.items()}
        with self._write_lock:
            landed = self._guarded([(id_, seq, True) for id_, (_, seq) in latest.items()], rows)
        return len(landed)

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        """Tombstone each id unless it has seen a seq >= its seq (ids never seen included, so an
        older upsert arriving later is a no-op); returns how many vectors were removed."""
        latest = IdMap.latest_per_id(ids, check_seqs(ids, seqs))
        self._check_open()
        if not latest:
            return 0
        with self._write_lock:
            landed = self._guarded([(id_, seq, False) for id_, (_, seq) in latest.items()])
        return sum(1 for prev in landed.values() if prev is not None and prev[1])

    def _guarded(
        self, rows: list[tuple[str, int, bool]], vectors: dict[str, np.ndarray] | None = None
    ) -> dict[str, Seen | None]:
        """Record in the ledger the rows that pass its guard, write those to Milvus (upserts with
        ``vectors``, else deletes of the live ones), confirm; id -> previous state of each row
        written. A write cut short before (by this process or a deposed leader) is settled first;
        on a failed Milvus write the rows are settled to what Milvus holds (or their previous
        state, if Milvus can't say) and the error raised."""
        if self._ledger.pending():
            self._settle()
        landed = self._ledger.record(rows)
        if not landed:
            return landed
        try:
            if vectors is not None:
                entities = [
                    {"key": key_of(id_), "rid": id_, "seq": seq, "v": vectors[id_]}
                    for id_, seq, _ in rows
                    if id_ in landed
                ]
                for chunk in engines.batches(entities):
                    with self._call() as client:
                        client.upsert(self.name, list(chunk))
            else:
                live = [id_ for id_, prev in landed.items() if prev is not None and prev[1]]
                for ids in engines.batches(live):
                    with self._call() as client:
                        client.delete(self.name, ids=[key_of(i) for i in ids])
        except BaseException:
            with contextlib.suppress(Exception):
                self._settle()
            raise
        self._ledger.confirm()
        return landed

    def forget_tombstones(self, upto_seq: int) -> int:
        """Drop tombstones with seq <= upto_seq; returns how many were dropped."""
        self._check_open()
        with self._write_lock:
            return self._ledger.forget(upto_seq)

    def checkpoint(self) -> None:
        """Flush milvus-lite's log into its segments (a server's writes are durable in its log)."""
        self._check_open()
        if not self._server:
            with self._call() as client:
                client.flush(self.name)

    def _settle(self) -> None:
        """Set the ledger's unconfirmed rows to what Milvus holds: its seq where it has the entity; a
        tombstone kept, or the state before the write, where it has none."""
        pending = self._ledger.unconfirmed()
        held: dict[str, int] = {}
        for chunk in engines.batches(pending):
            with self._call() as client:
                found = client.query(
                    self.name, ids=[key_of(p.id) for p in chunk], output_fields=["rid", "seq"]
                )
            held.update({str(e["rid"]): int(e["seq"]) for e in found})
        states: dict[str, Seen | None] = {}
        for p in pending:
            if p.id in held:
                states[p.id] = (held[p.id], True)
            elif p.live:  # the upsert did not land: back to the tombstone (or nothing) before it
                states[p.id] = None if p.prev is None else (p.prev[0], False)
        self._ledger.settle(states)

    # --- reads ----------------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Iterable[str] | None = None,
        allowed: Allowed | None = None,
        params: SearchParams | None = None,
    ) -> list[list[Hit]]:
        """Up to ``k`` hits ``(id, inner product)`` per query row, best first, skipping ``exclude``
        and, with ``allowed``, every id it does not allow: a boolean expression on the primary keys
        (hex digits only: no record id reaches it), which Milvus applies inside its search."""
        q = check_queries(queries, self.meta)
        check_k(k)
        self._check_open()
        if k == 0 or not len(q):
            return [[] for _ in range(len(q))]
        excluded = set(exclude) if exclude else set()
        expr = [f"key in {json.dumps(sorted(key_of(i) for i in allowed.ids()))}"] if allowed else []
        if excluded and allowed:
            expr.append(f"key not in {json.dumps(sorted(key_of(i) for i in excluded))}")
        limit = min(MAX_TOPK, k + (0 if allowed else len(excluded)))
        search: dict[str, Any] = {"metric_type": "IP"}
        if self._server:
            search["params"] = {"ef": max(self.spec.ef_search, limit, params.ef or 0 if params else 0)}
        with self._call() as client:
            answers = client.search(
                self.name,
                data=list(q),
                limit=limit,
                filter=" and ".join(expr),
                anns_field="v",
                search_params=search,
                output_fields=["rid"],
            )
        return [self._hits(answer, k, excluded) for answer in answers]

    @staticmethod
    def _hits(answer: Iterable[dict[str, Any]], k: int, excluded: set[str]) -> list[Hit]:
        hits = ((str(h["entity"]["rid"]), float(h["distance"])) for h in answer)
        return [hit for hit in hits if hit[0] not in excluded][:k]

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ids that are present, as float32 arrays of their own."""
        self._check_open()
        wanted = list(dict.fromkeys(ids))
        found: dict[str, np.ndarray] = {}
        for chunk in engines.batches(wanted):
            with self._call() as client:
                entities = client.query(self.name, ids=[key_of(i) for i in chunk], output_fields=["rid", "v"])
            found.update({str(e["rid"]): np.asarray(e["v"], dtype=np.float32) for e in entities})
        return {id_: found[id_] for id_ in wanted if id_ in found}

    def seq_of(self, id: str) -> int | None:
        """The last seq applied for ``id`` (upsert or delete), or None if never seen or forgotten."""
        self._check_open()
        return self._ledger.seq_of(id)

    def ids(self) -> list[str]:
        """Every live id, in no particular order."""
        self._check_open()
        return self._ledger.live_ids()

    def __len__(self) -> int:
        """Live vectors (tombstones not counted)."""
        self._check_open()
        return self._ledger.live()

    def disk_bytes(self) -> int:
        """Bytes of the files in the index's directory: milvus-lite's and the ledger."""
        return engines.directory_bytes(self.directory)

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop using the index; its collection and ledger stay."""
        if not self._closed:
            super().close()
            self._ledger.close()

    def destroy(self) -> None:
        """Close, drop the collection, delete the ledger (its rows in a shared store's database) and
        the index's directory (the ledger's file, milvus-lite's files)."""
        if not self._closed:
            with self._translated(), self._calls:
                self._client.drop_collection(self.name)
            self._ledger.destroy()
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _ensure_collection(client: MilvusClient, name: str, meta: IndexMeta, spec: MilvusSpec) -> None:
    if client.has_collection(name):
        properties = client.describe_collection(name).get("properties") or {}
        try:
            stored = json.loads(properties.get(META_PROPERTY, ""))
        except ValueError:
            stored = None
        engines.check_meta(meta, stored if isinstance(stored, dict) else None, name)
        return
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("rid", DataType.VARCHAR, max_length=_RID_BYTES)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=meta.dim)
    indexes = client.prepare_index_params()
    if spec.uri is None:
        indexes.add_index(field_name="v", index_type="FLAT", metric_type="IP")
    else:
        hnsw = {"M": spec.m, "efConstruction": spec.ef_construction}
        indexes.add_index(field_name="v", index_type="HNSW", metric_type="IP", params=hnsw)
    client.create_collection(
        name,
        schema=schema,
        index_params=indexes,
        consistency_level="Strong",
        properties={META_PROPERTY: json.dumps(engines.meta_fields(meta))},
    )
