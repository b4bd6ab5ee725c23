"""The backfill executors' shared fault scenario: a worker killed mid-page (process pool, Ray)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from _checks import assert_end_state

from embedswitch import Engine, EngineConfig
from embedswitch.version import Version

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda"]


def long_text(i: int) -> str:
    """About 400 words, so that a page keeps a worker busy for a while even with the hashing model."""
    return f"record {i} " + " ".join(WORDS[(i * 7 + j) % len(WORDS)] + str(j % 50) for j in range(400))


def kill_mid_page(version: Version, timeout_s: float = 60.0) -> int:
    """SIGKILL a backfill worker while it holds a page: the worker is stopped (SIGSTOP) first and
    killed only if its page is still unanswered, so the kill can't land between pages."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backfill = version.backfill
        executor = backfill.executor if backfill is not None else None
        pids = executor.busy_pids() if executor is not None else []  # type: ignore[attr-defined]
        if not pids:
            time.sleep(0.002)
            continue
        pid = pids[0]
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.2)  # a reply sent before the stop reaches the driver meanwhile
        if pid in executor.busy_pids():  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
            return pid
        os.kill(pid, signal.SIGCONT)
    raise AssertionError("no worker held a page")


def backfill_with_a_worker_killed(tmp_path: Path, executor: str, workers: int) -> None:
    """The shared scenario: a backfill whose worker is killed mid-page completes, every record
    once, and the end-state check passes; the killed page was run again."""
    config = EngineConfig(
        backfill_executor=executor, encode_workers=workers, backfill_batch=25, checkpoint_interval_s=0.2
    )
    with Engine.open(tmp_path, config) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"{i:04}", "text": long_text(i)} for i in range(400)])
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
        version = engine.collection("c").get_version("v2")
        assert version.backfill is not None
        kill_mid_page(version)
        pool = version.backfill.executor
        engine.wait_ready("c", "v2", 120)
        assert pool is not None and pool.restarts >= 1  # type: ignore[attr-defined]
        assert version.backfill.state.done == version.backfill.state.total == 400
        assert assert_end_state(engine, "c") == {"v1": 400, "v2": 400}
        assert version.problem is None  # the pool ran the page again; the backfill never failed
