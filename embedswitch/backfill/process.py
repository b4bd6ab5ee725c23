"""The process-pool executor: embed steps in worker processes of this machine.

Each worker is a fresh interpreter (no state copied from the serving process, no lock held by a
thread that does not exist there) that runs at idle CPU priority, loads the step's model
on its first page and keeps it (``load_model`` caches it per process): only the spec travels,
with the engine's ``ModelAccess``, checked again in the worker. The encoder's Python work then
holds the worker's GIL, not the serving process's, which is what a GPU host needs: there the
tokenizer and the per-batch Python work are what compete with serving. A worker that dies
mid-page costs that page's retry (``pool.SlotPool``); a worker whose serving process dies sees
its pipe close and exits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from ..activity import Activity, lower_priority
from ..models import set_torch_threads
from .base import EmbedStep
from .pool import SlotPool, WorkerDied, portable, unpack


class ProcessExecutor(SlotPool):
    """An ``EmbedExecutor`` on ``workers`` processes at idle priority, each with ``torch_threads``
    intra-op threads (None: torch's default)."""

    def __init__(
        self,
        workers: int,
        activity: Activity,
        yield_max_wait_s: float,
        nice: int,
        torch_threads: int | None,
        name: str,
        idle: bool = True,
    ) -> None:
        def slot(i: int) -> _ProcessSlot:
            return _ProcessSlot(nice, idle, torch_threads, f"{name}-{i}")

        super().__init__(slot, workers, activity, yield_max_wait_s, name)


class _ProcessSlot:
    """One worker process, started on the first page and again after it died."""

    def __init__(self, nice: int, idle: bool, torch_threads: int | None, name: str) -> None:
        self._nice, self._idle, self._torch_threads, self._name = nice, idle, torch_threads, name
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._stopped = threading.Event()
        self.pid: int | None = None

    def run(self, step: EmbedStep, texts: list[str]) -> np.ndarray:
        conn, process = self._ensure()
        self.pid = process.pid
        try:
            conn.send((step, texts))
            reply = conn.recv()
        except (EOFError, OSError) as exc:
            self._reap()
            raise WorkerDied(f"backfill worker {process.pid} exited ({process.returncode})") from exc
        finally:
            self.pid = None
        return unpack(reply)

    def stop(self) -> None:
        self._stopped.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()  # it holds nothing worth keeping: its page is redone
        self._reap()

    def _ensure(self) -> tuple[Connection, subprocess.Popen[bytes]]:
        if self._stopped.is_set():
            raise WorkerDied("the executor is closed")
        if self._process is None or self._conn is None or self._process.poll() is not None:
            self._reap()
            self._process, self._conn = _spawn(self._nice, self._idle, self._torch_threads)
        return self._conn, self._process

    def _reap(self) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def _spawn(nice: int, idle: bool, torch_threads: int | None) -> tuple[subprocess.Popen[bytes], Connection]:
    """A fresh interpreter running ``serve`` on one end of a socket pair; the other end, ours.

    Not ``multiprocessing``'s spawn, which imports the parent's ``__main__`` again in the child
    (a script without a main guard would start over there)."""
    ours, theirs = socket.socketpair()
    here = str(Path(__file__).resolve().parents[2])  # where this embedswitch is imported from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    args = f"{theirs.fileno()}, {nice}, {idle}, {torch_threads}"
    code = f"from embedswitch.backfill.process import serve; serve({args})"
    try:
        process = subprocess.Popen([sys.executable, "-c", code], pass_fds=[theirs.fileno()], env=env)
    finally:
        theirs.close()  # only the worker holds its end now: its death closes the pair
    _lower(process.pid, nice, idle)  # its start (imports, the model's load) too, not only its pages
    return process, Connection(ours.detach())


def _lower(pid: int, nice: int, idle: bool) -> None:
    """``activity.lower_priority`` for another process (its threads started later inherit it)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    if idle:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def serve(fd: int, nice: int, idle: bool, torch_threads: int | None) -> None:
    """A worker's loop on the socket ``fd``: pages in, ``("ok", vectors)`` or ``("error",
    exception)`` out, until the socket closes."""
    conn = Connection(fd)
    lower_priority(nice, idle)  # threads started from here on (torch's) inherit it
    set_torch_threads(torch_threads)
    while True:
        try:
            step, texts = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, object] = ("ok", step(texts))
        except BaseException as exc:
            reply = ("error", portable(exc))
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
