"""What the benchmarks share: timing and percentiles, SciFact, engines and servers, results files."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from embedswitch import Engine, EngineConfig
from embedswitch.evaluation.beir import Qrels, document_text, load_beir
from embedswitch.http import create_app
from embedswitch.models import EmbeddingModel

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SCIFACT = Path(os.environ.get("EMBEDSWITCH_SCIFACT") or REPO.parent / "shared" / "data" / "scifact")
"""SciFact in BEIR layout; ``$EMBEDSWITCH_SCIFACT`` points elsewhere."""

UPSERT_BATCH = 1000
"""Records per ``engine.upsert`` call when loading a corpus."""


# -- numbers -------------------------------------------------------------------------------------


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded to microseconds."""
    return round(seconds * 1000, 3)


def ratio(a: float, b: float) -> float | None:
    """``a / b`` to three decimals; None when ``b`` is zero."""
    return round(a / b, 3) if b else None


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """Count, p50, p99 (linear interpolation), mean and max of latencies given in seconds, in ms."""
    if not seconds:
        return {"n": 0}
    values = np.asarray(seconds, dtype=np.float64)
    return {
        "n": len(values),
        "p50_ms": ms(float(np.percentile(values, 50))),
        "p99_ms": ms(float(np.percentile(values, 99))),
        "mean_ms": ms(float(values.mean())),
        "max_ms": ms(float(values.max())),
    }


@dataclass
class Elapsed:
    s: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Elapsed]:
    """``with stopwatch() as t: ...`` leaves the wall time of the block in ``t.s``."""
    elapsed = Elapsed()
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.s = time.perf_counter() - start


def encode_throughput(model: EmbeddingModel, texts: Sequence[str], batch: int) -> dict[str, float]:
    """``model.encode`` over ``texts`` in chunks of ``batch`` documents: seconds and records/s.

    Measured the way a user calls it directly: one thread, torch using every core (the engine sets
    torch to one thread per call and runs its encoders in parallel instead)."""
    with torch_on_all_cores(), stopwatch() as t:
        for start in range(0, len(texts), batch):
            model.encode(texts[start : start + batch], purpose="document")
    return {"seconds": round(t.s, 3), "records_per_s": round(len(texts) / t.s, 1)}


@contextmanager
def torch_on_all_cores() -> Iterator[None]:
    if "torch" not in sys.modules:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scifact:
    """SciFact's corpus in file order, its test queries and their judgments."""

    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: Qrels

    def docs(self, n: int) -> tuple[list[str], list[str]]:
        """The first ``n`` documents as (ids, texts)."""
        return self.doc_ids[:n], self.doc_texts[:n]


@functools.cache
def load_scifact() -> Scifact:
    """SciFact (test split) from ``SCIFACT``; documents embed as ``"{title} {text}"`` like MTEB."""
    if not (SCIFACT / "corpus.jsonl").is_file():
        raise FileNotFoundError(
            f"SciFact not found at {SCIFACT}; put the BEIR scifact folder there or set EMBEDSWITCH_SCIFACT"
        )
    corpus, queries, qrels = load_beir(SCIFACT, "test")
    return Scifact(
        doc_ids=list(corpus),
        doc_texts=[document_text(doc) for doc in corpus.values()],
        query_ids=list(queries),
        query_texts=list(queries.values()),
        qrels=qrels,
    )


def synthetic_corpus(data: Scifact, n: int) -> tuple[list[str], list[str]]:
    """``n`` records: SciFact's documents, then variants of them with a numbered suffix."""
    size = len(data.doc_ids)
    ids, texts = [], []
    for i in range(n):
        round_, j = divmod(i, size)
        if round_ == 0:
            ids.append(data.doc_ids[j])
            texts.append(data.doc_texts[j])
        else:
            ids.append(f"{data.doc_ids[j]}~{round_}")
            texts.append(f"{data.doc_texts[j]} (variant {round_})")
    return ids, texts


def cycled(items: Sequence[str], n: int) -> list[str]:
    return [items[i % len(items)] for i in range(n)]


# -- engines and servers -------------------------------------------------------------------------


@contextmanager
def temp_engine(config: EngineConfig | None = None) -> Iterator[Engine]:
    """An engine on a fresh data dir that is deleted afterwards; default config unless given."""
    with tempfile.TemporaryDirectory(prefix="embedswitch-bench-") as tmp:
        engine = Engine.open(Path(tmp) / "data", config or EngineConfig())
        try:
            yield engine
        finally:
            engine.close()


def upsert_all(
    engine: Engine, collection: str, ids: Sequence[str], texts: Sequence[str], batch: int = UPSERT_BATCH
) -> int:
    """Upsert every (id, text) as a ``doc`` in batches; returns the seq of the last write."""
    seq = 0
    for start in range(0, len(ids), batch):
        chunk = zip(ids[start : start + batch], texts[start : start + batch], strict=True)
        records = [{"id": i, "text": t} for i, t in chunk]
        seq = engine.upsert(collection, records).seq
    return seq


def wait_applied(engine: Engine, collection: str, version: str, seq: int, timeout_s: float = 3600) -> None:
    """Block until ``version`` has applied the log up to ``seq`` (woken by the applier, not polled)."""
    found = engine.collection(collection).get_version(version)
    if not found.wait_applied(seq, timeout_s):
        raise TimeoutError(f"{collection}/{version} did not apply seq {seq} within {timeout_s} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(engine: Engine) -> Iterator[str]:
    """A real uvicorn server for ``engine`` on a free port, in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(engine, close_engine=False), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bench-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the benchmark server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# -- results -------------------------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {
            name: _version(name)
            for name in (
                "embedswitch",
                "numpy",
                "torch",
                "hnswlib",
                "sentence-transformers",
                "model2vec",
                "uvicorn",
            )
        },
    }


def save_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
