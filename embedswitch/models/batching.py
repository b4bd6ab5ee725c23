"""Micro-batched query encodes: concurrent queries to one model are embedded in one call.

A transformer embeds 16 texts in one forward pass much faster than in 16 passes, so concurrent
queries gain from riding together. ``QueryBatcher.encode`` is called by request threads with one
text each. The first caller becomes the batch's leader: if another batch is being embedded or
other queries are waiting, it waits up to ``max_wait_s`` for more queries (or until ``max_batch``
are waiting), then embeds them all in one call and hands each caller its row; a query that
arrives while the model is idle is embedded at once, so a lone query never waits. No extra thread
and no hop: the leader is one of the callers. Rows are the same vectors an unbatched call gives
(within float tolerance: padding to a batch's longest text changes the arithmetic, not the result).
A batch the model rejects (``InputRejected``) is embedded query by query, so only the rejected
query fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._errors import InputRejected


@dataclass
class _Query:
    text: str
    vector: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False
    claimed: bool = field(default=False)


class QueryBatcher:
    """Embeds queries of many threads in shared calls of ``encode`` (texts -> ``[n, dim]`` rows)."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_wait_s: float, max_batch: int) -> None:
        self._encode = encode
        self._max_wait_s = max_wait_s
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._waiting: list[_Query] = []
        self._leading = False  # a leader is gathering a batch
        self._running = 0  # batches being embedded now

    def encode(self, text: str) -> np.ndarray:
        """The vector of one query text; raises what ``encode`` raised for its batch."""
        query = _Query(text)
        with self._cond:
            self._waiting.append(query)
            self._cond.notify_all()
            while not query.done:
                if not self._leading and not query.claimed:
                    batch = self._lead()
                    self._cond.release()
                    try:
                        self._run(batch)
                    finally:
                        self._cond.acquire()
                        self._running -= 1
                        self._cond.notify_all()
                else:
                    self._cond.wait()
        if query.error is not None:
            raise query.error
        assert query.vector is not None
        return query.vector

    def _lead(self) -> list[_Query]:
        """Gather a batch (the condition is held): wait for company only when there is some."""
        self._leading = True
        busy = self._running > 0 or len(self._waiting) > 1
        deadline = time.monotonic() + self._max_wait_s
        while busy and len(self._waiting) < self._max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
        for query in batch:
            query.claimed = True
        self._leading = False
        self._running += 1
        self._cond.notify_all()  # a waiting query left over may lead the next batch
        return batch

    def _run(self, batch: list[_Query]) -> None:
        """Embed the batch outside the condition and hand out the rows."""
        try:
            vectors = self._encode([query.text for query in batch])
        except InputRejected as exc:
            if len(batch) > 1:  # one query's text is to blame: each alone, so only that one fails
                for query in batch:
                    self._run([query])
                return
            batch[0].error, batch[0].done = exc, True
            return
        except BaseException as exc:  # every query of the batch gets the error
            for query in batch:
                query.error, query.done = exc, True
            return
        for query, row in zip(batch, vectors, strict=True):
            query.vector, query.done = row, True
