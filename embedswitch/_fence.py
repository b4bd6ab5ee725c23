"""The fencing token a background worker writes under, for stores shared by several processes.

A worker (a version's applier, backfill or training; a rollout's controller) runs in the process
that holds its cluster-wide lease (``Store.try_lease``). It sets ``fenced(name, epoch)`` around its
work; a shared store, and an index in the shared database, check in each write's transaction that
the lease ``name`` is still at ``epoch`` and refuse the write with ``LeaseLost`` if another
process took it over meanwhile (a leader paused past its lease, then resumed, writes nothing). A
write made outside any ``fenced`` block (an API call) is not fenced. The embedded store, used by
one process, never checks.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Fence:
    lease: str  # the lease's name, e.g. "version:articles/v2"
    epoch: int  # the epoch this process took it at


_CURRENT: ContextVar[Fence | None] = ContextVar("embedswitch_fence", default=None)


def current() -> Fence | None:
    """The fence of the running worker, or None outside one."""
    return _CURRENT.get()


@contextmanager
def fenced(lease: str, epoch: int) -> Iterator[Fence]:
    """Writes made inside (in this thread or context) are checked against the lease's epoch."""
    fence = Fence(lease, epoch)
    token = _CURRENT.set(fence)
    try:
        yield fence
    finally:
        _CURRENT.reset(token)


def thread(target: Callable[[], object], name: str) -> threading.Thread:
    """A daemon thread running ``target`` in a copy of the caller's context, so a worker started
    inside ``fenced`` keeps writing under that fence (threads do not inherit context variables)."""
    return threading.Thread(target=contextvars.copy_context().run, args=(target,), name=name, daemon=True)
