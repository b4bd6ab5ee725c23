"""The ``qdrant`` index: the vectors of one (collection, version, kind) in a collection of a Qdrant
server (``url``), or of qdrant-client's local mode in the index's directory when no url is given.

Beyond ``VectorIndex``'s promises:

- one Qdrant collection per (collection, version, kind), named ``<prefix>_<collection>_<version>_
  <kind>_<hash>``, with one named vector ``v`` scored by dot product and the meta that built it in
  the collection's metadata (opening it with another fingerprint or dim is an ``IndexMismatch``);
- a record id is a point id ``uuid5(id)``; the payload holds the real ``id``, its ``seq`` and
  ``live``. A delete keeps the point without a vector (``live`` false) as the tombstone: search
  never sees it, and its ``seq`` guards the id;
- Qdrant holds the seq guard itself: every write is a conditional upsert (``update_filter``: the
  stored point's ``seq`` is below the write's, Qdrant >= 1.16; a point not there yet is inserted),
  so a write that lost a race to a newer one, from any process, changes nothing. The counts a
  write returns come from reading the stored seqs first, under the index's write lock: exact
  while this process is the index's only writer (the version's leader);
- every write waits for Qdrant to apply it (``wait=True``): it is in Qdrant's write-ahead log when
  it returns, so ``checkpoint`` has nothing to do. Bulk writes go in batches of 256 points;
- scores are Qdrant's dot products in float32; ``get`` returns vectors exactly as written.

Limits:

- A Qdrant server searches with HNSW (``m``, ``ef_construction``, ``ef_search`` of the spec), exact
  below its ``full_scan_threshold``; recall depends on those as for any HNSW.
- Local mode (no url) is qdrant-client's Python engine: exact search over numpy arrays, every point
  committed to SQLite on its own (50 to 1,300 points/s on this project's machine, by the disk's
  load), one process per directory. It is the real qdrant-client code and honours
  ``update_filter`` like the server, but it is for tests and demos, never for serving. Calls to it
  take turns (it is not thread-safe).
- ``memory_bytes`` is 0 for a server (the vectors live there) and the vectors' bytes in local mode;
  ``disk_bytes`` is the local files' size, and 0 for a server, which does not report a
  collection's size through its API.
- Writes are not fenced by the cluster lease (Qdrant is not in the store's transactions); the seq
  guard makes a deposed leader's late writes no-ops or the same vectors.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from embedswitch.index import _engines as engines
from embedswitch.index._checks import check_k, check_queries, check_seqs, check_vectors
from embedswitch.index._engines import passes
from embedswitch.index._ids import IdMap
from embedswitch.index.access import engine_key
from embedswitch.index.base import Allowed, Hit, IndexHost, IndexMeta, SearchParams
from embedswitch.index.specs import QdrantSpec

VECTOR = "v"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "embedswitch")
_PAGE = 1024
_ERRORS = (ResponseHandlingException, UnexpectedResponse, httpx.HTTPError, RuntimeError, ValueError)
"""What qdrant-client raises for an unreachable server, a refused request, or a local directory
held by another process."""
MEMORY = ":memory:"
"""``location`` of an in-memory local-mode index (tests that are not about persistence)."""


def point_id(record_id: str) -> str:
    """The Qdrant point id of a record id."""
    return str(uuid.uuid5(_NAMESPACE, record_id))


class QdrantIndex(engines.EngineIndex[QdrantClient]):
    """A ``VectorIndex`` in a Qdrant collection; see the module docstring."""

    index_type = "qdrant"
    engine = "Qdrant"
    errors = _ERRORS

    def __init__(
        self, client: QdrantClient, name: str, meta: IndexMeta, spec: QdrantSpec, directory: Path | None
    ) -> None:
        """Use the collection ``name`` that ``open`` found or created; ``directory``: local mode's."""
        super().__init__(client, name, meta, spec.url, spec.url or str(directory or MEMORY))
        self.spec = spec
        self._directory = directory

    @classmethod
    def from_spec(
        cls, spec: QdrantSpec, directory: Path, meta: IndexMeta, host: IndexHost | None = None
    ) -> QdrantIndex:
        """Open the index; ``host`` is not used (Qdrant holds the seq guard itself)."""
        return cls.open(meta, spec, Path(directory))

    @classmethod
    def stored_kinds(
        cls, spec: QdrantSpec, directory: Path, collection: str, version: str, host: IndexHost | None = None
    ) -> list[str]:
        """The record kinds that have an index of ``version``: on the server, or (local mode) the
        subdirectories of ``directory``."""
        if spec.url is None:
            return sorted(p.name for p in directory.iterdir() if p.is_dir()) if directory.is_dir() else []
        start = engines.version_prefix(spec.prefix, collection, version)
        with (
            cls.translating(f"the Qdrant server at {spec.url}", server=spec.url),
            contextlib.closing(_client(spec, None)) as client,
        ):
            names = [c.name for c in client.get_collections().collections if c.name.startswith(start)]
            kinds = []
            for name in names:
                stored = client.get_collection(name).config.metadata or {}
                if (stored.get("collection"), stored.get("version")) == (collection, version):
                    kinds.append(str(stored["kind"]))
        return sorted(kinds)

    @classmethod
    def open(
        cls, meta: IndexMeta, spec: QdrantSpec | None = None, location: Path | str = MEMORY
    ) -> QdrantIndex:
        """Open the index of ``meta`` on ``spec.url``'s server, or in local mode at ``location`` (a
        directory, or ``MEMORY``), creating its collection the first time."""
        spec = spec or QdrantSpec()
        name = engines.collection_name(spec.prefix, meta.collection, meta.version, meta.kind)
        directory = None if spec.url is not None or location == MEMORY else Path(location)
        with cls.translating(f"index {meta.collection}/{meta.version}/{meta.kind}", meta, spec.url):
            client = QdrantClient(location=MEMORY) if spec.url is None and directory is None else None
            client = client or _client(spec, directory)
            try:
                _ensure_collection(client, name, meta, spec)
            except BaseException:
                client.close()
                raise
        return cls(client, name, meta, spec, directory)

    # --- writes ---------------------------------------------------------------------------------

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, seqs: Sequence[int], durable: bool = False
    ) -> int:
        """Store each vector under its id unless the id has seen a seq >= its seq; returns how many.
        Applied (durable) in Qdrant when it returns, whatever ``durable`` says."""
        vecs = check_vectors(vectors, len(ids), self.meta, what="vectors")
        latest = IdMap.latest_per_id(ids, check_seqs(ids, seqs))
        self._check_open()
        if not latest:
            return 0
        with self._write_lock:
            stored = self._stored(list(latest))
            points = [
                qm.PointStruct(
                    id=point_id(id_),
                    vector={VECTOR: vecs[row].tolist()},
                    payload={"id": id_, "seq": seq, "live": True},
                )
                for id_, (row, seq) in latest.items()
                if passes(stored.get(id_), seq)
            ]
            self._send(points)
        return len(points)

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        """Tombstone each id unless it has seen a seq >= its seq (ids never seen included, so an
        older upsert arriving later is a no-op); returns how many vectors were removed."""
        latest = IdMap.latest_per_id(ids, check_seqs(ids, seqs))
        self._check_open()
        if not latest:
            return 0
        with self._write_lock:
            stored = self._stored(list(latest))
            passing = {id_: seq for id_, (_, seq) in latest.items() if passes(stored.get(id_), seq)}
            points = [
                qm.PointStruct(id=point_id(id_), vector={}, payload={"id": id_, "seq": seq, "live": False})
                for id_, seq in passing.items()
            ]
            self._send(points)
        return sum(1 for id_ in passing if stored.get(id_, (0, False))[1])

    def forget_tombstones(self, upto_seq: int) -> int:
        """Drop tombstones with seq <= upto_seq; returns how many were dropped."""
        self._check_open()
        old = qm.Filter(
            must=[
                qm.FieldCondition(key="live", match=qm.MatchValue(value=False)),
                qm.FieldCondition(key="seq", range=qm.Range(lte=int(upto_seq))),
            ]
        )
        with self._write_lock, self._call() as client:
            found = client.count(self.name, count_filter=old, exact=True).count
            if found:
                client.delete(self.name, points_selector=qm.FilterSelector(filter=old), wait=True)
        return int(found)

    def checkpoint(self) -> None:
        """Nothing to do: every write was applied when it returned."""
        self._check_open()

    def _stored(self, ids: list[str]) -> dict[str, tuple[int, bool]]:
        """id -> (seq, live) of those ids Qdrant holds."""
        found: dict[str, tuple[int, bool]] = {}
        for chunk in engines.batches(ids, _PAGE):
            with self._call() as client:
                records = client.retrieve(
                    self.name, [point_id(i) for i in chunk], with_payload=["id", "seq", "live"]
                )
            for record in records:
                payload = record.payload or {}
                found[str(payload["id"])] = (int(payload["seq"]), bool(payload["live"]))
        return found

    def _send(self, points: list[qm.PointStruct]) -> None:
        """Conditional upserts, in batches: each point lands only if Qdrant's copy is older."""
        for chunk in engines.batches(points):
            with self._call() as client:
                client.upsert(self.name, list(chunk), wait=True, update_filter=_older_than_sent(chunk))

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
        and, with ``allowed``, every id it does not allow: a Qdrant filter on the point ids, which
        Qdrant applies inside its search, so ``k`` allowed points give ``k`` hits."""
        q = check_queries(queries, self.meta)
        check_k(k)
        self._check_open()
        if k == 0 or not len(q):
            return [[] for _ in range(len(q))]
        where = self._query_filter(exclude, allowed)
        ef = max(self.spec.ef_search, k, params.ef or 0 if params is not None else 0)
        exact = params is not None and params.exact
        params_q = qm.SearchParams(hnsw_ef=ef, exact=exact) if self._server else None  # local mode: exact
        requests = [
            qm.QueryRequest(
                query=row.tolist(), using=VECTOR, limit=k, filter=where, params=params_q, with_payload=["id"]
            )
            for row in q
        ]
        with self._call() as client:
            answers = client.query_batch_points(self.name, requests)
        return [[(str((p.payload or {})["id"]), float(p.score)) for p in a.points] for a in answers]

    def _query_filter(self, exclude: Iterable[str] | None, allowed: Allowed | None) -> qm.Filter | None:
        """The Qdrant filter of a search: the allowed ids' points only, the excluded ones left out."""
        must: list[qm.Condition] = []
        must_not: list[qm.Condition] = []
        if allowed is not None:
            must.append(qm.HasIdCondition(has_id=[point_id(i) for i in sorted(allowed.ids())]))
        if exclude:
            must_not.append(qm.HasIdCondition(has_id=[point_id(i) for i in sorted(set(exclude))]))
        if not must and not must_not:
            return None
        return qm.Filter(must=must or None, must_not=must_not or None)

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ids that are present, as float32 arrays of their own."""
        self._check_open()
        wanted = list(dict.fromkeys(ids))
        found: dict[str, np.ndarray] = {}
        for chunk in engines.batches(wanted, _PAGE):
            with self._call() as client:
                records = client.retrieve(
                    self.name, [point_id(i) for i in chunk], with_payload=["id"], with_vectors=[VECTOR]
                )
            for record in records:
                vector = record.vector.get(VECTOR) if isinstance(record.vector, dict) else None
                if vector is not None:
                    found[str((record.payload or {})["id"])] = np.asarray(vector, dtype=np.float32)
        return {id_: found[id_] for id_ in wanted if id_ in found}

    def seq_of(self, id: str) -> int | None:
        """The last seq applied for ``id`` (upsert or delete), or None if never seen or forgotten."""
        self._check_open()
        seen = self._stored([id]).get(id)
        return None if seen is None else seen[0]

    def ids(self) -> list[str]:
        """Every live id, in no particular order."""
        self._check_open()
        found: list[str] = []
        offset: Any = None
        while True:
            with self._call() as client:
                records, offset = client.scroll(
                    self.name, scroll_filter=_LIVE, limit=_PAGE, offset=offset, with_payload=["id"]
                )
            found.extend(str((r.payload or {})["id"]) for r in records)
            if offset is None:
                return found

    def __len__(self) -> int:
        """Live vectors (tombstones not counted)."""
        self._check_open()
        with self._call() as client:
            return int(client.count(self.name, count_filter=_LIVE, exact=True).count)

    def disk_bytes(self) -> int:
        """Local mode: its files' bytes. A server: 0, as Qdrant's API does not report a collection's
        size on disk (its telemetry and metrics do)."""
        return 0 if self._directory is None else engines.directory_bytes(self._directory)

    # --- lifecycle ------------------------------------------------------------------------------

    def destroy(self) -> None:
        """Close and drop the collection (and, in local mode, its directory)."""
        if not self._closed:
            with self._translated(), self._calls:
                self._client.delete_collection(self.name)
        self.close()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)


_LIVE = qm.Filter(must=[qm.FieldCondition(key="live", match=qm.MatchValue(value=True))])


def _older_than_sent(points: Sequence[qm.PointStruct]) -> qm.Filter:
    """Qdrant's own seq guard for a batch: a stored point is replaced only when its ``seq`` is below
    the one sent for it (one clause per distinct seq of the batch)."""
    by_seq: dict[int, list[Any]] = {}
    for p in points:
        by_seq.setdefault(int((p.payload or {})["seq"]), []).append(p.id)
    return qm.Filter(
        should=[
            qm.Filter(
                must=[
                    qm.HasIdCondition(has_id=pids),
                    qm.FieldCondition(key="seq", range=qm.Range(lt=seq)),
                ]
            )
            for seq, pids in by_seq.items()
        ]
    )


def _client(spec: QdrantSpec, directory: Path | None) -> QdrantClient:
    if spec.url is not None:
        return QdrantClient(
            url=spec.url,
            api_key=engine_key(spec),
            timeout=math.ceil(spec.timeout_s),
            check_compatibility=False,
        )
    assert directory is not None
    return QdrantClient(path=str(directory))


def _ensure_collection(client: QdrantClient, name: str, meta: IndexMeta, spec: QdrantSpec) -> None:
    if client.collection_exists(name):
        engines.check_meta(meta, client.get_collection(name).config.metadata, name)
        return
    hnsw = qm.HnswConfigDiff(m=spec.m, ef_construct=spec.ef_construction)
    params = qm.VectorParams(size=meta.dim, distance=qm.Distance.DOT, hnsw_config=hnsw)
    client.create_collection(name, vectors_config={VECTOR: params}, metadata=engines.meta_fields(meta))
    if spec.url is not None:  # payload indexes do nothing in local mode, which warns about them
        client.create_payload_index(name, "seq", qm.PayloadSchemaType.INTEGER, wait=True)
        client.create_payload_index(name, "live", qm.PayloadSchemaType.BOOL, wait=True)
