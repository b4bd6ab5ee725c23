"""The id map of an in-process index: record ids <-> storage keys, seqs, tombstones, seq guards."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

_INT_OBJECT = sys.getsizeof(2**40)
"""Bytes of one Python int past the small-int cache: each key stored in the dict is one."""


@dataclass
class Plan:
    """The writes of one upsert call that pass the seq guard, split by whether the id is live."""

    new_ids: list[str] = field(default_factory=list)
    new_rows: list[int] = field(default_factory=list)
    new_seqs: list[int] = field(default_factory=list)
    old_ids: list[str] = field(default_factory=list)
    old_rows: list[int] = field(default_factory=list)
    old_seqs: list[int] = field(default_factory=list)


class IdMap:
    """Live ids with their storage key and last seq, and tombstones (deleted id -> seq of the delete).

    Keys are handed out in increasing order and never reused, so a key names one stored vector of
    one id until the map is rebuilt (``compacted``). Per live id the map holds one dict entry; per
    key ever handed out, one list slot (its id, or None once removed) and one int64 seq: about
    100 bytes per live id plus 16 per key. ``holes`` counts the keys no longer live. Not
    thread-safe: ``LocalIndex`` guards it.
    """

    def __init__(self) -> None:
        self.key_of: dict[str, int] = {}
        self.tombstones: dict[str, int] = {}
        self.id_by_key: list[str | None] = []
        self._seqs = np.zeros(0, dtype=np.int64)
        self._id_bytes = 0

    # --- reads ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.key_of)

    @property
    def next_key(self) -> int:
        return len(self.id_by_key)

    @property
    def holes(self) -> int:
        """Keys handed out whose id is no longer live (removed or moved to a newer key)."""
        return self.next_key - len(self.key_of)

    def seq_of(self, id_: str) -> int | None:
        key = self.key_of.get(id_)
        return int(self._seqs[key]) if key is not None else self.tombstones.get(id_)

    def keys(self, ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.key_of[i] for i in ids), dtype=np.int64, count=len(ids))

    def seqs_of(self, keys: np.ndarray) -> np.ndarray:
        return self._seqs[keys]

    def live(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Every live id with its key and seq, in one order."""
        ids = list(self.key_of)
        keys = self.keys(ids)
        return ids, keys, self._seqs[keys]

    def nbytes(self) -> int:
        """Bytes held by the map's Python objects and arrays (ids' strings included)."""
        return (
            sys.getsizeof(self.key_of)
            + sys.getsizeof(self.tombstones)
            + sys.getsizeof(self.id_by_key)
            + int(self._seqs.nbytes)
            + self._id_bytes
            + _INT_OBJECT * (len(self.key_of) + len(self.tombstones))
        )

    # --- seq guards -----------------------------------------------------------------------------

    def passes(self, id_: str, seq: int) -> bool:
        last = self.seq_of(id_)
        return last is None or seq > last

    @staticmethod
    def latest_per_id(ids: Sequence[str], seqs: Sequence[int]) -> dict[str, tuple[int, int]]:
        """id -> (row, seq) of its highest seq in this call; on a tie the first row wins."""
        latest: dict[str, tuple[int, int]] = {}
        for row, (id_, seq) in enumerate(zip(ids, seqs, strict=True)):
            seen = latest.get(id_)
            if seen is None or seq > seen[1]:
                latest[id_] = (row, seq)
        return latest

    def plan_upsert(self, ids: Sequence[str], seqs: Sequence[int]) -> Plan:
        plan = Plan()
        for id_, (row, seq) in self.latest_per_id(ids, seqs).items():
            if not self.passes(id_, seq):
                continue
            if id_ in self.key_of:
                plan.old_ids.append(id_)
                plan.old_rows.append(row)
                plan.old_seqs.append(seq)
            else:
                plan.new_ids.append(id_)
                plan.new_rows.append(row)
                plan.new_seqs.append(seq)
        return plan

    def plan_delete(self, ids: Sequence[str], seqs: Sequence[int]) -> dict[str, int]:
        """id -> seq of the deletes that pass the guard (the latest per id)."""
        latest = self.latest_per_id(ids, seqs)
        return {id_: seq for id_, (_, seq) in latest.items() if self.passes(id_, seq)}

    # --- writes ---------------------------------------------------------------------------------

    def add(self, ids: Sequence[str], seqs: Sequence[int]) -> np.ndarray:
        """Give each new id the next key, with its seq; returns the keys."""
        start = self.next_key
        keys = np.arange(start, start + len(ids), dtype=np.int64)
        self._reserve(start + len(ids))
        self._seqs[start : start + len(ids)] = seqs
        self.id_by_key.extend(ids)
        self.key_of.update(zip(ids, keys.tolist(), strict=True))
        self._id_bytes += sum(sys.getsizeof(id_) for id_ in ids)
        for id_ in ids:
            self.tombstones.pop(id_, None)
        return keys

    def set_seqs(self, ids: Sequence[str], seqs: Sequence[int]) -> None:
        """New seqs for live ids."""
        self._seqs[self.keys(ids)] = seqs

    def remove(self, ids: Sequence[str]) -> np.ndarray:
        """Forget the keys of live ids; returns them."""
        keys = self.keys(ids)
        for id_, key in zip(ids, keys.tolist(), strict=True):
            del self.key_of[id_]
            self.id_by_key[key] = None
        self._id_bytes -= sum(sys.getsizeof(id_) for id_ in ids)
        return keys

    def forget_tombstones(self, upto_seq: int) -> int:
        drop = [id_ for id_, seq in self.tombstones.items() if seq <= upto_seq]
        for id_ in drop:
            del self.tombstones[id_]
        return len(drop)

    def _reserve(self, size: int) -> None:
        if size > len(self._seqs):
            grown = np.zeros(max(size, len(self._seqs) * 5 // 4, 64), dtype=np.int64)
            grown[: len(self._seqs)] = self._seqs
            self._seqs = grown

    # --- whole maps -----------------------------------------------------------------------------

    @classmethod
    def restore(
        cls, ids: list[str], keys: np.ndarray, seqs: np.ndarray, tombstones: dict[str, int], next_key: int
    ) -> IdMap:
        """The map with live ``ids`` under ``keys`` (as a checkpoint recorded them)."""
        found = cls()
        key_list = [int(k) for k in keys.tolist()]
        size = max(next_key, max(key_list, default=-1) + 1)
        found.id_by_key = [None] * size
        for id_, key in zip(ids, key_list, strict=True):
            found.id_by_key[key] = id_
        found._seqs = np.zeros(size, dtype=np.int64)
        found._seqs[np.asarray(key_list, dtype=np.int64)] = seqs
        found.key_of = dict(zip(ids, key_list, strict=True))
        found.tombstones = dict(tombstones)
        found._id_bytes = sum(sys.getsizeof(id_) for id_ in ids)
        return found
