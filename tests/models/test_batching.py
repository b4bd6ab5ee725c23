"""Micro-batched query encodes: concurrent queries share encode calls and get the vectors an
unbatched call gives."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from embedswitch import Engine, EngineConfig, InputRejected
from embedswitch.models import load_model
from embedswitch.models.batching import QueryBatcher

QUERIES = [
    f"query number {i} about {topic}"
    for i, topic in enumerate(["vitamin d", "cancer risk", "gene expression", "protein folding"] * 12)
]


class Counting:
    """Wraps a real model's query encode and records the size of every call."""

    def __init__(self, name: str) -> None:
        self.model = load_model(name)
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.sizes.append(len(texts))
        return self.model.encode(texts, purpose="query")


def _concurrently(batcher: QueryBatcher, threads: int) -> dict[str, np.ndarray]:
    barrier = threading.Barrier(threads)

    def one(text: str) -> tuple[str, np.ndarray]:
        if QUERIES.index(text) < threads:
            barrier.wait()  # the first wave arrives together
        return text, batcher.encode(text)

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(one, QUERIES))


@pytest.mark.slow
def test_concurrent_minilm_queries_are_batched_and_match_unbatched() -> None:
    counting = Counting("minilm")
    batcher = QueryBatcher(counting, max_wait_s=0.005, max_batch=8)
    got = _concurrently(batcher, threads=16)
    assert sum(counting.sizes) == len(QUERIES)
    assert len(counting.sizes) < len(QUERIES) and max(counting.sizes) > 1 and max(counting.sizes) <= 8
    for text, vector in got.items():
        alone = counting.model.encode([text], purpose="query")[0]
        np.testing.assert_allclose(vector, alone, atol=1e-5)


def test_a_lone_query_is_embedded_in_a_call_of_its_own() -> None:
    counting = Counting("hashing")
    batcher = QueryBatcher(counting, max_wait_s=10.0, max_batch=8)  # a wait would be noticed: 10 s
    for text in QUERIES[:3]:
        np.testing.assert_array_equal(batcher.encode(text), counting.model.encode([text], purpose="query")[0])
    assert counting.sizes == [1, 1, 1]


def test_an_error_reaches_every_query_of_its_batch_and_the_next_ones_work() -> None:
    calls: list[list[str]] = []
    model = load_model("hashing")

    def flaky(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        if any("poison" in t for t in texts):
            raise RuntimeError("the endpoint refused the batch")
        return model.encode(texts, purpose="query")

    batcher = QueryBatcher(flaky, max_wait_s=0.2, max_batch=64)
    texts = ["poison"] + [f"fine {i}" for i in range(7)]
    barrier = threading.Barrier(len(texts))

    def one(text: str) -> str:
        barrier.wait()
        try:
            batcher.encode(text)
        except RuntimeError:
            return "error"
        return "ok"

    with ThreadPoolExecutor(len(texts)) as pool:
        outcomes = dict(zip(texts, pool.map(one, texts), strict=True))
    poisoned = next(batch for batch in calls if "poison" in batch)
    assert all(outcomes[t] == "error" for t in poisoned)
    assert all(outcomes[t] == "ok" for t in texts if t not in poisoned)
    assert batcher.encode("after") is not None


def test_a_rejected_query_fails_alone_the_rest_of_its_batch_is_embedded() -> None:
    """The model rejects one query's text (as an endpoint's 400 does): embedded one by one, the
    other queries of the batch get their vectors; only that query gets the error."""
    calls: list[list[str]] = []
    model = load_model("hashing")
    busy, release = threading.Event(), threading.Event()

    def rejecting(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        if texts == ["hold"]:  # keeps the model busy, so the next queries gather into one batch
            busy.set()
            release.wait(30)
        if "poison" in texts:
            raise InputRejected("the endpoint rejected the input (HTTP 400)")
        return model.encode(texts, purpose="query")

    batcher = QueryBatcher(rejecting, max_wait_s=1.0, max_batch=64)
    texts = ["poison"] + [f"fine {i}" for i in range(7)]

    def one(text: str) -> str:
        try:
            vector = batcher.encode(text)
        except InputRejected:
            return "rejected"
        np.testing.assert_array_equal(vector, model.encode([text], purpose="query")[0])
        return "ok"

    with ThreadPoolExecutor(len(texts) + 1) as pool:
        held = pool.submit(batcher.encode, "hold")
        assert busy.wait(10)
        outcomes = dict(zip(texts, pool.map(one, texts), strict=True))
        release.set()
        held.result()
    assert outcomes == {"poison": "rejected"} | {t: "ok" for t in texts[1:]}
    assert sorted(calls[1]) == sorted(texts)  # they shared a batch, which the model rejected


def test_static_model_encodes_in_parallel_threads_like_serially() -> None:
    """model2vec sets its tokenizer's truncation on every call; shared by threads, that raises
    ("Already borrowed") in most runs of this test."""
    model = load_model("minilm-static")
    serial = {t: model.encode([t])[0] for t in QUERIES}
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            parallel = list(pool.map(lambda t: (t, model.encode([t])[0]), QUERIES))
            for text, vector in parallel:
                np.testing.assert_array_equal(vector, serial[text])


@pytest.mark.slow
def test_engine_search_gives_the_same_hits_with_batching_on_and_off(tmp_path: Path) -> None:
    docs = [{"id": f"d{i}", "text": f"{topic} study number {i}"} for i, topic in enumerate(QUERIES)]
    found = {}
    for wait_ms in (0.0, 5.0):
        with Engine.open(tmp_path / str(wait_ms), EngineConfig(query_batch_wait_ms=wait_ms)) as engine:
            engine.create_collection("c", {"name": "v1", "model": "minilm"})
            ack = engine.upsert("c", docs)
            engine.search("c", "warm up", min_seq=ack.seq)
            with ThreadPoolExecutor(8) as pool:
                results = pool.map(lambda q, e=engine: e.search("c", q, k=5), QUERIES)
                found[wait_ms] = [[(h.id, h.score) for h in r.hits] for r in results]
    for alone, batched in zip(found[0.0], found[5.0], strict=True):
        assert [i for i, _ in alone] == [i for i, _ in batched]
        np.testing.assert_allclose([s for _, s in alone], [s for _, s in batched], atol=1e-5)
