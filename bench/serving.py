"""Serving throughput under concurrency, next to the floor of the same web stack.

Two measurements, each side by side in one run:

- **QPS vs the bare FastAPI floor**: ``embedswitch serve`` over a collection of SciFact abstracts
  (exact index, ``minilm-static``) against a bare FastAPI app on the same uvicorn that returns the
  same 10 hits for every query, at 1, 8 and 32 concurrent clients. The ratio says how much of the
  web stack's own capacity embedswitch keeps.
- **Micro-batched query encodes**: the same server over a ``minilm`` (transformer) collection with
  query batching on (the default) and off (``EMBEDSWITCH_QUERY_BATCH_WAIT_MS=0``), at 1, 4 and 16
  clients.

Every server is its own process (``python -m embedswitch.cli serve``, or uvicorn for the floor),
and the load comes from one more process: asyncio clients on one HTTP connection each, each
sending SciFact test queries back to back for ``seconds``. Configurations alternate per client
count, so drift on a shared machine hits them alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from embedswitch import Engine, EngineConfig

from ._common import free_port, latency_stats, load_scifact, ratio, upsert_all, wait_applied

COLLECTION = "serving"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Params:
    docs: int
    minilm_docs: int
    clients: tuple[int, ...]
    minilm_clients: tuple[int, ...]
    seconds: float

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(docs=500, minilm_docs=100, clients=(1, 8), minilm_clients=(4,), seconds=1.0)
        return cls(docs=5000, minilm_docs=500, clients=(1, 8, 32), minilm_clients=(1, 4, 16), seconds=8.0)


class Query(BaseModel):
    """The floor's request body: what a search sends."""

    text: str
    k: int = 10


def bare_app() -> Any:
    """The floor: FastAPI on the same uvicorn, answering every search with the same 10 hits."""
    from fastapi import FastAPI

    hits = [{"id": f"doc-{i}", "score": 1.0 - i / 100, "fields": {}} for i in range(10)]
    app = FastAPI()

    @app.post("/v1/collections/{c}/search")
    def search(c: str, body: Query) -> dict[str, Any]:
        return {"version": "v1", "applied_seq": 0, "request_id": "0" * 32, "hits": hits[: body.k]}

    return app


def _build(data_dir: Path, model: str, docs: int) -> None:
    data = load_scifact()
    ids, texts = data.docs(docs)
    with Engine.open(data_dir, EngineConfig()) as engine:
        engine.create_collection(COLLECTION, {"name": "v1", "model": model, "index": {"type": "exact"}})
        wait_applied(engine, COLLECTION, "v1", upsert_all(engine, COLLECTION, ids, texts))
        engine.collection(COLLECTION).get_version("v1").checkpoint()


@contextmanager
def _server(cmd: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=REPO, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.post(
                    f"{url}/v1/collections/{COLLECTION}/search", json={"text": "warm up"}
                ).is_success:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server {cmd} did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _embedswitch(data_dir: Path, env: dict[str, str]) -> Any:
    port = free_port()
    cmd = [sys.executable, "-m", "embedswitch.cli", "serve", "--data", str(data_dir), "--port", str(port)]
    return _server([*cmd, "--log-level", "warning"], env, port)


def _bare() -> Any:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "bench.serving:bare_app", "--factory", "--port", str(port)]
    return _server([*cmd, "--log-level", "warning"], {}, port)


def _load(url: str, clients: int, seconds: float, queries: list[str]) -> dict[str, Any]:
    """QPS and latency of ``clients`` concurrent clients, in a process of its own."""
    script = (
        "import asyncio, json, sys; from bench.serving import _clients; "
        "print(json.dumps(asyncio.run(_clients(*json.loads(sys.argv[1])))))"
    )
    arg = json.dumps([url, clients, seconds, queries])
    done = subprocess.run([sys.executable, "-c", script, arg], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def _clients(url: str, clients: int, seconds: float, queries: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one(n: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            i = n
            while time.perf_counter() < deadline:
                body = {"text": queries[i % len(queries)], "k": 10}
                start = time.perf_counter()
                response = await http.post(f"/v1/collections/{COLLECTION}/search", json=body)
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 200
                i += clients

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(clients)))
    elapsed = time.perf_counter() - start
    return {"qps": round(len(latencies) / elapsed, 1), "errors": errors, **latency_stats(latencies)}


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    queries = load_scifact().query_texts
    floor_rows, batching_rows = [], []
    with tempfile.TemporaryDirectory(prefix="embedswitch-serving-") as tmp:
        static, minilm = Path(tmp) / "static", Path(tmp) / "minilm"
        _build(static, "minilm-static", params.docs)
        _build(minilm, "minilm", params.minilm_docs)
        for clients in params.clients:
            with _bare() as url:
                bare = _load(url, clients, params.seconds, queries)
            with _embedswitch(static, {}) as url:
                ours = _load(url, clients, params.seconds, queries)
            floor_rows.append(
                {"clients": clients, "bare FastAPI qps": bare["qps"], "embedswitch qps": ours["qps"]}
                | {"embedswitch/bare": ratio(ours["qps"], bare["qps"]), "p50_ms": ours["p50_ms"]}
                | {"p99_ms": ours["p99_ms"], "errors": ours["errors"]}
            )
        for clients in params.minilm_clients:
            for label, wait in (("off", "0"), ("on", "1.5")):
                with _embedswitch(minilm, {"EMBEDSWITCH_QUERY_BATCH_WAIT_MS": wait}) as url:
                    found = _load(url, clients, params.seconds, queries)
                batching_rows.append({"clients": clients, "batching": label, **found})
    by = {(r["clients"], r["batching"]): r for r in batching_rows}
    summary: dict[str, Any] = {f"qps/bare @{r['clients']}": r["embedswitch/bare"] for r in floor_rows}
    for clients in params.minilm_clients:
        on, off = by[(clients, "on")], by[(clients, "off")]
        summary[f"minilm qps batching on/off @{clients}"] = ratio(on["qps"], off["qps"])
    return {
        "params": {**asdict(params), "index": "exact", "k": 10},
        "tables": {
            "QPS vs a bare FastAPI app (minilm-static)": floor_rows,
            "minilm query batching": batching_rows,
        },
        "summary": summary,
    }
