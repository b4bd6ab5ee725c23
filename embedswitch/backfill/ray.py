"""The Ray executor: embed steps on Ray actors, on a cluster (``ray://host:10001``) or a local one.

Each actor loads the step's model on its first page and keeps it, as a process-pool worker does
(the spec travels, with the engine's ``ModelAccess``, checked again on the actor). Where the
cluster has GPUs, each actor asks for one (``num_gpus=1``, at most as many actors as GPUs);
otherwise one CPU each, at most as many actors as CPUs. Actors restart when they die and the page
is run again (``pool.SlotPool``): a dead actor costs that page's retry. Vectors come back to the
driver, beside the version's writer, which writes them through the seq-guarded sink; an actor
never writes an index.

The backfill hands out one page at a time, in order, a few ahead; a long-lived actor pool fits
that, where a ``ray.data`` pipeline fed page by page did not (measured: its read stage released
the pages only once the feed ended, so nothing was written until the end). On a cluster the
nodes need embedswitch and the model's extra installed, and the model files at the same path.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ModelNotInstalled
from ..activity import Activity, lower_priority
from ..models import set_torch_threads
from .base import EmbedStep
from .pool import SlotPool, WorkerDied, portable, unpack

_init_lock = threading.Lock()


class RayExecutor(SlotPool):
    """An ``EmbedExecutor`` on up to ``workers`` Ray actors of the cluster at ``address`` (None: a
    local cluster, started on the first page if this process has none)."""

    def __init__(
        self,
        workers: int,
        activity: Activity,
        yield_max_wait_s: float,
        nice: int,
        torch_threads: int | None,
        address: str | None,
        name: str,
        idle: bool = True,
    ) -> None:
        self._address = address
        self._actor_options: dict[str, Any] | None = None
        self._args = (nice, idle, torch_threads)
        super().__init__(self._slot, workers, activity, yield_max_wait_s, name)

    def _start(self) -> None:
        resources = _connect(self._address)
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        if gpus:
            self._workers = min(self._workers, gpus)
            self._actor_options = {"num_gpus": 1, "num_cpus": 1}
        else:
            self._workers = min(self._workers, cpus)
            self._actor_options = {"num_cpus": 1}
        super()._start()

    def _slot(self, index: int) -> _ActorSlot:
        assert self._actor_options is not None
        return _ActorSlot(self._actor_options, self._args)


def _connect(address: str | None) -> dict[str, float]:
    """Join the cluster at ``address``, or start a local one, unless this process is in one
    already; the cluster's resources."""
    try:
        import ray
    except ImportError as exc:
        raise ModelNotInstalled(
            "the ray backfill executor needs Ray: pip install 'embedswitch[ray]', or choose "
            "backfill_executor=process",
            model="ray",
        ) from exc
    with _init_lock:
        if not ray.is_initialized():
            here = str(Path(__file__).resolve().parents[2])  # where this embedswitch is imported from
            path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=None if address else {"env_vars": {"PYTHONPATH": path}},
            )
    resources: dict[str, float] = ray.cluster_resources()
    return resources


class _Worker:
    """The actor: pages in, ``("ok", vectors)`` or ``("error", exception)`` out."""

    def __init__(self, nice: int, idle: bool, torch_threads: int | None) -> None:
        lower_priority(nice, idle)
        set_torch_threads(torch_threads)

    def pid(self) -> int:
        return os.getpid()

    def embed(self, step: EmbedStep, texts: list[str]) -> tuple[str, object]:
        try:
            return ("ok", step(texts))
        except BaseException as exc:
            return ("error", portable(exc))


class _ActorSlot:
    """One actor, restarted by Ray when it dies (its page is then run again by the pool)."""

    def __init__(self, options: dict[str, Any], args: tuple[int, bool, int | None]) -> None:
        import ray

        remote = ray.remote(max_restarts=-1, max_task_retries=0, **options)(_Worker)
        self._actor: Any = remote.remote(*args)
        self.pid: int | None = None

    def run(self, step: EmbedStep, texts: list[str]) -> np.ndarray:
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        try:
            self.pid = ray.get(self._actor.pid.remote())
            reply = ray.get(self._actor.embed.remote(step, texts))
        except (RayActorError, WorkerCrashedError) as exc:
            raise WorkerDied(f"backfill actor {self.pid} died: {type(exc).__name__}") from exc
        finally:
            self.pid = None
        return unpack(reply)

    def stop(self) -> None:
        import ray

        with contextlib.suppress(Exception):  # already gone, or Ray shut down before the backfill
            ray.kill(self._actor, no_restart=True)
