"""What the out-of-process executors share: pages handed to a fixed set of workers, one at a time
each, and a page whose worker died handed again.

A ``Slot`` is one worker (a process of this machine, a Ray actor) and runs one page at a time;
``SlotPool`` is the ``EmbedExecutor`` in front of them: one dispatcher thread per slot takes the
next page, waits briefly while queries are in flight (as the threads executor does), and runs it on
its slot. When the worker dies mid-page (killed, out of memory), the slot starts a new one and the
page is run again, up to ``attempts`` times: a dead worker costs that page's retry, never the
backfill. Only vectors come back; the backfill driver writes them through the seq-guarded sink.
Nothing starts until the first page is submitted, so a version that embeds nothing (loaded
vectors, a model without text) never starts a worker.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .._errors import ModelUnavailable
from ..activity import Activity
from .base import EmbedStep

DEFAULT_ATTEMPTS = 3
"""Runs of one page, at most, when its worker keeps dying (a text that crashes the model)."""


class WorkerDied(Exception):
    """The worker running a page is gone (its process exited or was killed): the page did not run."""


class Slot(Protocol):
    """One worker. ``run`` embeds one page on it, starting it first if needed; it raises
    ``WorkerDied`` when the worker dies meanwhile, and what the step raised otherwise."""

    pid: int | None  # the worker's process id while a page runs on it, else None

    def run(self, step: EmbedStep, texts: list[str]) -> np.ndarray: ...

    def stop(self) -> None:
        """End the worker at once (a page running on it fails with ``WorkerDied``)."""
        ...


@dataclass
class _Page:
    step: EmbedStep
    texts: list[str]
    future: Future[np.ndarray]


class SlotPool:
    """An ``EmbedExecutor`` over slots made by ``make_slot`` (called once per slot, lazily)."""

    def __init__(
        self,
        make_slot: Callable[[int], Slot],
        workers: int,
        activity: Activity,
        yield_max_wait_s: float,
        name: str,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        self._make_slot = make_slot
        self._workers = max(1, workers)
        self._activity = activity
        self._yield_max_wait_s = yield_max_wait_s
        self._name = name
        self._attempts = attempts
        self._pages: queue.SimpleQueue[_Page | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._slots: list[Slot] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.restarts = 0
        """Pages run again because their worker died."""

    def submit(self, step: EmbedStep, texts: list[str]) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        with self._lock:
            if self._closed:
                future.cancel()
                return future
            if not self._threads:
                self._start()
        self._pages.put(_Page(step, texts, future))
        return future

    def busy_pids(self) -> list[int]:
        """Process ids of the workers running a page now."""
        with self._lock:
            return [slot.pid for slot in self._slots if slot.pid is not None]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            slots, threads = list(self._slots), list(self._threads)
        for _ in threads:
            self._pages.put(None)
        for slot in slots:
            slot.stop()
        for thread in threads:
            thread.join(timeout=5)
        while True:  # pages never started
            try:
                page = self._pages.get_nowait()
            except queue.Empty:
                break
            if page is not None:
                page.future.cancel()

    def _start(self) -> None:
        for i in range(self._workers):
            slot = self._make_slot(i)
            thread = threading.Thread(target=self._serve, args=(slot,), name=f"{self._name}-{i}", daemon=True)
            self._slots.append(slot)
            self._threads.append(thread)
            thread.start()

    def _serve(self, slot: Slot) -> None:
        while True:
            page = self._pages.get()
            if page is None or self._closed:
                if page is not None:
                    page.future.cancel()
                return
            if not page.future.set_running_or_notify_cancel():
                continue
            self._activity.wait_idle(self._yield_max_wait_s)
            try:
                page.future.set_result(self._run(slot, page))
            except BaseException as exc:
                page.future.set_exception(exc)

    def _run(self, slot: Slot, page: _Page) -> np.ndarray:
        for attempt in range(1, self._attempts + 1):
            try:
                return slot.run(page.step, page.texts)
            except WorkerDied as exc:
                if self._closed:
                    raise ModelUnavailable("the backfill executor was closed while a page ran") from exc
                with self._lock:
                    self.restarts += 1
                if attempt == self._attempts:
                    raise ModelUnavailable(
                        f"a backfill worker died {attempt} times on one page of {len(page.texts)} texts "
                        "(is a text crashing the model, or the machine out of memory?); the page is "
                        "retried after a delay",
                    ) from exc
        raise AssertionError("unreachable")


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (sent from a worker back to the driver), else a
    ``ModelUnavailable`` that names it."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return ModelUnavailable(f"the model failed in a backfill worker: {type(exc).__name__}: {exc}")
    return exc


def unpack(reply: Sequence[Any]) -> np.ndarray:
    """A worker's reply: ``("ok", vectors)`` or ``("error", exception)``, raised here."""
    status, payload = reply
    if status == "error":
        raise payload
    return np.asarray(payload, dtype=np.float32)
