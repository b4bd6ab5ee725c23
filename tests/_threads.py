"""Running a call in a thread and timing how long it waits: for the tests of waiting methods."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def in_thread(fn: Callable[[], Any]) -> Callable[[float], tuple[Any, float]]:
    """Start ``fn`` in a thread; the returned ``join(timeout)`` gives (result, seconds it took)."""
    out: dict[str, Any] = {}
    start = time.monotonic()

    def run() -> None:
        out["result"] = fn()
        out["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join(timeout: float) -> tuple[Any, float]:
        thread.join(timeout)
        assert not thread.is_alive(), f"still waiting after {timeout} s"
        return out["result"], out["elapsed"]

    return join
