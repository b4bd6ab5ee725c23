"""The process-pool executor: real worker processes, one killed mid-page."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from _checks import assert_end_state

from embedswitch import Engine, EngineConfig, ModelNotAllowed
from embedswitch.activity import Activity
from embedswitch.backfill import EmbedStep, ProcessExecutor, resolve
from embedswitch.models import ModelAccess, parse_model_spec
from embedswitch.version import Version

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda"]


def long_text(i: int) -> str:
    """About 400 words, so that a page keeps a worker busy for a while even with the hashing model."""
    return f"record {i} " + " ".join(WORDS[(i * 7 + j) % len(WORDS)] + str(j % 50) for j in range(400))


def test_vectors_and_errors_come_back_from_the_workers(tmp_path: Path) -> None:
    """Vectors equal the in-process step's; a spec outside the engine's model directories is
    refused in the worker too (the spec travels with the allowlists, never the model)."""
    executor = ProcessExecutor(2, Activity(), 0.0, 10, 1, "test-encode")
    try:
        step = EmbedStep.of(parse_model_spec({"type": "hashing", "seed": 3}))
        texts = [long_text(i) for i in range(40)]
        futures = [executor.submit(step, texts[i : i + 10]) for i in range(0, 40, 10)]
        got = np.concatenate([future.result(timeout=60) for future in futures])
        assert np.allclose(got, step(texts), atol=1e-6)
        assert executor.restarts == 0

        outside = parse_model_spec({"type": "model2vec", "path": str(tmp_path / "elsewhere")})
        refused = EmbedStep.of(outside, ModelAccess(model_dirs=(tmp_path / "models",)))
        with pytest.raises(ModelNotAllowed):
            executor.submit(refused, ["text"]).result(timeout=60)
    finally:
        executor.close()


def test_auto_is_the_process_pool_for_a_gpu_model() -> None:
    assert resolve("auto", parse_model_spec({"type": "minilm", "device": "cuda:0"})) == "process"
    assert resolve("auto", parse_model_spec("minilm")) == "threads"
    assert resolve("auto", parse_model_spec("hashing")) == "threads"
    assert resolve("ray", parse_model_spec("hashing")) == "ray"


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
        engine.upsert("c", [{"id": f"{i:04}", "text": long_text(i)} for i in range(1000)])
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
        version = engine.collection("c").get_version("v2")
        assert version.backfill is not None
        kill_mid_page(version)
        pool = version.backfill.executor
        engine.wait_ready("c", "v2", 120)
        assert pool is not None and pool.restarts >= 1  # type: ignore[attr-defined]
        assert version.backfill.state.done == version.backfill.state.total == 1000
        assert assert_end_state(engine, "c") == {"v1": 1000, "v2": 1000}
        assert version.problem is None  # the pool ran the page again; the backfill never failed


def test_a_worker_killed_mid_page_costs_only_that_page(tmp_path: Path) -> None:
    backfill_with_a_worker_killed(tmp_path, "process", workers=2)
