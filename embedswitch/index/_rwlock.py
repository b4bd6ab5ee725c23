"""A readers-writer lock: any number of readers at once, or one writer alone.

Writers are preferred: once a writer waits, new readers wait behind it, so a steady stream of
searches cannot starve a write; hold the write side only briefly. Not re-entrant: a thread
holding either side must not acquire the lock again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType


class RWLock:
    """``with lock.read: ...`` shares the lock; ``with lock.write: ...`` holds it alone."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._turn = threading.Condition(self._mutex)
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self.generation = 0
        """How many times the write side was taken: what a reader sees is the same while it is."""
        self.read = _Side(self._acquire_read, self._release_read)
        self.write = _Side(self._acquire_write, self._release_write)

    def _acquire_read(self) -> None:
        with self._mutex:
            while self._writing or self._writers_waiting:
                self._turn.wait()
            self._readers += 1

    def _release_read(self) -> None:
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._writers_waiting:
                self._turn.notify_all()

    def _acquire_write(self) -> None:
        with self._mutex:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._turn.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
            self.generation += 1

    def _release_write(self) -> None:
        with self._mutex:
            self._writing = False
            self._turn.notify_all()


class _Side:
    """One side of an ``RWLock`` as a context manager."""

    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire: Callable[[], None], release: Callable[[], None]) -> None:
        self._acquire = acquire
        self._release = release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()
