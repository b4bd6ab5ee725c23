"""A search on one pinned version: its query vector, what restricts it (a filter, exclusions), its
knobs, and its hits shaped as the request asks.

A filter restricts the candidates *before* ranking (each index type's way: ``index/base.py``'s
``Allowed``), on the records as the store holds them when the search runs, whichever version
answers. The hits' fields are read after the search (a ``pgvector`` index reads them in its own
query); a hit whose record changed meanwhile so that it no longer matches (or was deleted) is
dropped, so every hit returned matches the filter on the fields it is returned with.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from pydantic import TypeAdapter

from .filters import Filter, matches
from .index.base import Allowed, Ranked, SearchParams
from .index.base import Hit as IndexHit
from .results import Hit
from .specs import SearchRequest
from .store.base import RecordStore
from .version import Version

_HITS = TypeAdapter(list[Hit])


class Filters:
    """The records recent filters of one collection matched, as of a head seq, so a filter repeated
    asks the store once: after writes, only the records the change log names since then are read
    again (up to ``CATCH_UP`` entries; past that, or past a pruned stretch of the log, the filter is
    asked again whole). Bounded to ``MAX_SETS`` filters and ``MAX_IDS`` ids in all, least recently
    used dropped first."""

    MAX_SETS = 32
    MAX_IDS = 1_000_000
    CATCH_UP = 2048

    def __init__(self, store: RecordStore, collection: str) -> None:
        self.store, self.collection = store, collection
        self._lock = threading.Lock()
        self._found: OrderedDict[tuple[str, Filter], tuple[int, frozenset[str]]] = OrderedDict()

    def restriction(self, kind: str, where: Filter | None) -> Allowed | None:
        """What a search of ``kind`` records with the filter ``where`` may return (None: anything);
        the matching ids are asked for only by an index that needs them."""
        if where is None:
            return None
        return Allowed(where, lambda: self.matching(kind, where))

    def clear(self) -> None:
        """Forget every filter's ids (the next search of each asks the store)."""
        with self._lock:
            self._found.clear()

    def matching(self, kind: str, where: Filter) -> frozenset[str]:
        head = self.store.head_seq(self.collection)  # before the read: a later write moves it
        key = (kind, where)
        with self._lock:
            found = self._found.get(key)
            if found is not None and found[0] == head:
                self._found.move_to_end(key)
                return found[1]
        caught_up = self._caught_up(kind, where, found, head) if found is not None else None
        if caught_up is not None:
            ids = caught_up
        else:
            ids = frozenset(self.store.record_ids(self.collection, kind, where))
        with self._lock:
            self._found[key] = (head, ids)
            self._found.move_to_end(key)
            total = sum(len(found) for _, found in self._found.values())
            while len(self._found) > 1 and (len(self._found) > self.MAX_SETS or total > self.MAX_IDS):
                _, (_, dropped) = self._found.popitem(last=False)
                total -= len(dropped)
        return ids

    def _caught_up(
        self, kind: str, where: Filter, found: tuple[int, frozenset[str]], head: int
    ) -> frozenset[str] | None:
        """``found`` (the ids matching at its seq) brought up to ``head`` from the change log: the
        records of ``kind`` written or deleted since are read again (their fields now: a write
        after ``head`` is read again at the next search too). None when the log can't say."""
        seq, ids = found
        if not 0 < head - seq <= self.CATCH_UP:
            return None
        changes = self.store.read_log(self.collection, seq, head - seq)
        if not changes or changes[0].seq != seq + 1 or changes[-1].seq != head:
            return None  # pruned meanwhile, or not all there
        touched = sorted({c.id for c in changes if c.kind == kind and c.op != "interact"})
        fields = self.store.get_fields(self.collection, kind, touched)
        kept = set(ids)
        for rid in touched:
            if rid in fields and matches(where, fields[rid]):
                kept.add(rid)
            else:
                kept.discard(rid)
        return frozenset(kept)


def knobs(request: SearchRequest) -> SearchParams | None:
    """The request's per-search knobs (None when it sets none)."""
    if request.ef is None and not request.exact:
        return None
    return SearchParams(ef=request.ef, exact=request.exact)


def run(
    pinned: Version,
    request: SearchRequest,
    known_kinds: set[str],
    allowed: Allowed | None,
    text_vector: np.ndarray | None = None,
) -> list[tuple[str, float]]:
    """``request`` answered by ``pinned``'s index among what ``allowed`` allows: ``(id, score)`` best
    first. ``text_vector``: the query text's vector when the caller embedded it already (a batch)."""
    kind = request.kind
    params = knobs(request)
    exclude = None
    if request.like is not None:
        like = request.like
        exclude = {like.id} if like.kind == kind else None
        query = pinned.vector(like.kind, like.id)
    elif request.vector is not None:
        query = pinned.check_vectors([request.vector], "the query vector")[0]
    else:
        return pinned.search(request.text or "", request.k, kind, known_kinds, allowed, params, text_vector)
    return pinned.search_vector(query, request.k, kind, known_kinds, exclude, allowed, params)


def hits(
    store: RecordStore,
    collection: str,
    kind: str,
    found: list[IndexHit],
    where: Filter | None,
    fields: Sequence[str] | None,
    score_threshold: float | None = None,
) -> list[Hit]:
    """``found`` ``(id, score)``, best first, as the request asks: each with its record's fields
    (those the index read with it, ``Ranked.fields``, else the store's now; none for a record
    that is gone), only those scoring at least ``score_threshold`` and matching ``where`` on those
    fields, each with only the ``fields`` named (all when None)."""
    known = found.fields if isinstance(found, Ranked) else None
    if known is None:
        known = store.get_fields(collection, kind, [rid for rid, _ in found])
    out = []
    for rid, score in found:
        record = known.get(rid, {})
        if score_threshold is not None and score < score_threshold:
            continue
        if where is not None and not matches(where, record):
            continue
        if fields is not None:
            record = {f: record[f] for f in fields if f in record}
        out.append({"id": rid, "score": score, "fields": record})
    return _HITS.validate_python(out)  # one validation for them all
