"""The embedded executor: embed steps on threads of this process.

Encoder threads run at idle CPU priority (``activity.lower_priority``) and wait briefly while
queries are in flight before each page, so a backfill uses CPU time that serving doesn't want.
torch runs one intra-op thread per call (``EngineConfig.torch_threads``), so ``workers`` threads
encode side by side, one core each. They share the serving process's GIL.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..activity import Activity, lower_priority
from .base import EmbedStep


class ThreadExecutor:
    """An ``EmbedExecutor`` on ``workers`` idle-priority threads."""

    def __init__(
        self,
        workers: int,
        activity: Activity,
        yield_max_wait_s: float,
        nice: int,
        name: str,
        idle: bool = True,
    ) -> None:
        self._activity = activity
        self._yield_max_wait_s = yield_max_wait_s
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix=name, initializer=lower_priority, initargs=(nice, idle)
        )

    def submit(self, step: EmbedStep, texts: list[str]) -> Future[np.ndarray]:
        return self._pool.submit(self._run, step, texts)

    def _run(self, step: EmbedStep, texts: list[str]) -> np.ndarray:
        self._activity.wait_idle(self._yield_max_wait_s)
        return step(texts)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
