"""The process-pool executor: real worker processes, one killed mid-page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _executors import backfill_with_a_worker_killed, long_text

from embedswitch import ModelNotAllowed
from embedswitch.activity import Activity
from embedswitch.backfill import EmbedStep, ProcessExecutor, resolve
from embedswitch.models import ModelAccess, parse_model_spec


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
    # a model that is more than its spec (here: derived users) stays in the serving process
    assert resolve("process", parse_model_spec({"type": "history-mean", "text": "hashing"})) == "threads"


def test_a_worker_killed_mid_page_costs_only_that_page(tmp_path: Path) -> None:
    backfill_with_a_worker_killed(tmp_path, "process", workers=2)
