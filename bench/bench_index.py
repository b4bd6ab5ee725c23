"""Side-by-side HNSW libraries on the same data: build time, query latency, recall@10, deletes.

    .venv/bin/python bench/bench_index.py [--n 100000] [--dim 384] [--queries 500]

Compares usearch, hnswlib (what ``embedswitch.index.hnsw`` uses) and faiss ``IndexHNSWFlat`` with
the same parameters (M=16, efConstruction=128, efSearch=64, inner product). A library that is not
installed is skipped with the reason printed. ``--embedswitch`` adds a row for embedswitch's own
``HnswIndex`` (hnswlib plus id/seq bookkeeping and locking) to show the wrapper's overhead.

The data are clustered like real embeddings: points of a Gaussian mixture in a 48-dim latent space,
projected to ``dim`` dims, with isotropic noise, normalised. Queries come from the same mixture.
Ground truth is exact inner-product search. Results go to bench/results/index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

M, EF_CONSTRUCTION, EF_SEARCH, K = 16, 128, 64, 10
LATENT_DIM = 48
CENTER_SPREAD, CLUSTER_NOISE, AMBIENT_NOISE = 0.8, 1.0, 0.1
"""Overlapping clusters: tuned so that hnswlib gets recall@10 ~0.95 at 50k x 384, like real text
embeddings; well-separated clusters make every library score 1.0 and tell nothing."""
RESULTS = Path(__file__).parent / "results" / "index.json"


class Lib(Protocol):
    """What the benchmark needs from one library."""

    name: str

    def build(self, data: np.ndarray) -> None: ...

    def query(self, q: np.ndarray) -> np.ndarray:
        """The top-K row numbers of one query, single-threaded."""
        ...

    def batch(self, queries: np.ndarray) -> np.ndarray:
        """The top-K row numbers of every query, using every core."""
        ...

    def delete(self, rows: np.ndarray) -> str | None:
        """Delete rows; None if done, else why this library cannot."""
        ...

    def nbytes(self) -> int: ...

    def version(self) -> str: ...


@dataclass
class Row:
    library: str
    version: str
    build_s: float
    p50_ms: float
    p99_ms: float
    recall_at_10: float
    batch_qps: float
    index_mb: float
    deletes: dict[str, Any] = field(default_factory=dict)


# --- libraries ----------------------------------------------------------------------------------


class Usearch:
    name = "usearch"

    def __init__(self, dim: int) -> None:
        from usearch.index import Index

        self.index = Index(
            ndim=dim,
            metric="ip",
            dtype="f32",
            connectivity=M,
            expansion_add=EF_CONSTRUCTION,
            expansion_search=EF_SEARCH,
        )

    def build(self, data: np.ndarray) -> None:
        self.index.add(np.arange(len(data), dtype=np.uint64), data, threads=0)

    def query(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(self.index.search(q, K, threads=1).keys, dtype=np.int64)

    def batch(self, queries: np.ndarray) -> np.ndarray:
        return np.asarray(self.index.search(queries, K, threads=0).keys, dtype=np.int64)

    def delete(self, rows: np.ndarray) -> str | None:
        self.index.remove(rows.astype(np.uint64))
        return None

    def nbytes(self) -> int:
        return int(self.index.serialized_length)

    def version(self) -> str:
        import usearch

        return str(usearch.__version__)


class Hnswlib:
    name = "hnswlib"

    def __init__(self, dim: int) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=dim)
        self.dim = dim

    def build(self, data: np.ndarray) -> None:
        self.index.init_index(max_elements=len(data), M=M, ef_construction=EF_CONSTRUCTION)
        self.index.add_items(data, np.arange(len(data)), num_threads=-1)
        self.index.set_ef(EF_SEARCH)

    def query(self, q: np.ndarray) -> np.ndarray:
        labels, _ = self.index.knn_query(q[None, :], k=K, num_threads=1)
        return np.asarray(labels[0], dtype=np.int64)

    def batch(self, queries: np.ndarray) -> np.ndarray:
        labels, _ = self.index.knn_query(queries, k=K, num_threads=-1)
        return np.asarray(labels, dtype=np.int64)

    def delete(self, rows: np.ndarray) -> str | None:
        for row in rows.tolist():
            self.index.mark_deleted(row)
        return None

    def nbytes(self) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "h.bin")
            self.index.save_index(path)
            return os.path.getsize(path)

    def version(self) -> str:
        from importlib.metadata import version

        return version("hnswlib")


class Faiss:
    name = "faiss"

    def __init__(self, dim: int) -> None:
        import faiss

        self.faiss = faiss
        self.threads = faiss.omp_get_max_threads()
        self.index: Any = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION

    def build(self, data: np.ndarray) -> None:
        self.faiss.omp_set_num_threads(self.threads)
        self.index.add(data)
        self.index.hnsw.efSearch = EF_SEARCH
        self.faiss.omp_set_num_threads(1)

    def query(self, q: np.ndarray) -> np.ndarray:
        _, labels = self.index.search(q[None, :], K)
        return np.asarray(labels[0], dtype=np.int64)

    def batch(self, queries: np.ndarray) -> np.ndarray:
        self.faiss.omp_set_num_threads(self.threads)
        try:
            _, labels = self.index.search(queries, K)
        finally:
            self.faiss.omp_set_num_threads(1)
        return np.asarray(labels, dtype=np.int64)

    def delete(self, rows: np.ndarray) -> str | None:
        try:
            self.index.remove_ids(rows.astype(np.int64))
        except RuntimeError as exc:
            return f"IndexHNSWFlat.remove_ids: {str(exc).strip().splitlines()[-1].rsplit(': ', 1)[-1]}"
        return None

    def nbytes(self) -> int:
        return int(len(self.faiss.serialize_index(self.index)))

    def version(self) -> str:
        return str(self.faiss.__version__)


class Embedswitch:
    """embedswitch's HnswIndex: hnswlib plus string ids, seq guards and a lock."""

    name = "embedswitch.HnswIndex"

    def __init__(self, dim: int) -> None:
        from embedswitch.index import IndexMeta
        from embedswitch.index.hnsw import HnswIndex

        self.tmp = tempfile.TemporaryDirectory()
        meta = IndexMeta("bench", "v1", "text", "bench", dim)
        self.index = HnswIndex(
            Path(self.tmp.name), meta, m=M, ef_construction=EF_CONSTRUCTION, ef_search=EF_SEARCH
        )

    def build(self, data: np.ndarray) -> None:
        self.index.upsert([str(i) for i in range(len(data))], data, [1] * len(data))

    def query(self, q: np.ndarray) -> np.ndarray:
        return np.array([int(i) for i, _ in self.index.search(q[None, :], K)[0]], dtype=np.int64)

    def batch(self, queries: np.ndarray) -> np.ndarray:
        hits = self.index.search(queries, K)
        return np.array([[int(i) for i, _ in h] + [-1] * (K - len(h)) for h in hits], dtype=np.int64)

    def delete(self, rows: np.ndarray) -> str | None:
        self.index.delete([str(r) for r in rows.tolist()], [2] * len(rows))
        return None

    def nbytes(self) -> int:
        return self.index.memory_bytes()

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("embedswitch")
        except PackageNotFoundError:
            return "source tree"


FACTORIES: dict[str, Callable[[int], Lib]] = {
    "usearch": Usearch,
    "hnswlib": Hnswlib,
    "faiss": Faiss,
    "embedswitch": Embedswitch,
}


# --- data and measurements ----------------------------------------------------------------------


def clustered(n: int, n_queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors from a Gaussian mixture in a low-dim latent space, projected to ``dim``."""
    rng = np.random.default_rng(seed)
    n_clusters = max(1, n // 200)
    centers = CENTER_SPREAD * rng.standard_normal((n_clusters, LATENT_DIM)).astype(np.float32)
    projection = rng.standard_normal((LATENT_DIM, dim)).astype(np.float32) / np.sqrt(LATENT_DIM)

    def sample(count: int) -> np.ndarray:
        latent = centers[rng.integers(0, n_clusters, count)]
        latent += CLUSTER_NOISE * rng.standard_normal((count, LATENT_DIM)).astype(np.float32)
        x = latent @ projection + AMBIENT_NOISE * rng.standard_normal((count, dim)).astype(np.float32)
        return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)

    return sample(n), sample(n_queries)


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ data.T
        top = np.argpartition(scores, -k, axis=1)[:, -k:]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + 100] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / K


def measure(lib: Lib, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, seed: int) -> Row:
    start = time.perf_counter()
    lib.build(data)
    build_s = time.perf_counter() - start

    found, latencies = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(lib.query(q))
        latencies.append(time.perf_counter() - t0)
    lat = np.array(latencies) * 1000

    t0 = time.perf_counter()
    lib.batch(queries)
    batch_qps = len(queries) / (time.perf_counter() - t0)

    return Row(
        library=lib.name,
        version=lib.version(),
        build_s=round(build_s, 2),
        p50_ms=round(float(np.percentile(lat, 50)), 3),
        p99_ms=round(float(np.percentile(lat, 99)), 3),
        recall_at_10=round(recall(np.stack(found), truth), 4),
        batch_qps=round(batch_qps, 1),
        index_mb=round(lib.nbytes() / 2**20, 1),
        deletes=measure_deletes(lib, data, queries, seed),
    )


def measure_deletes(lib: Lib, data: np.ndarray, queries: np.ndarray, seed: int) -> dict[str, Any]:
    """Delete 1% of the rows, then check that no search returns them."""
    rows = np.random.default_rng(seed + 1).choice(len(data), max(1, len(data) // 100), replace=False)
    t0 = time.perf_counter()
    why_not = lib.delete(rows)
    elapsed = time.perf_counter() - t0
    if why_not is not None:
        return {"supported": False, "reason": why_not}
    remaining = np.setdiff1d(np.arange(len(data)), rows)
    truth = remaining[exact_top_k(data[remaining], queries)]
    found = lib.batch(queries)
    return {
        "supported": True,
        "deleted": len(rows),
        "ms_per_1k": round(elapsed * 1000 / len(rows) * 1000, 2),
        "deleted_ids_returned": int(np.isin(found, rows).sum()),
        "recall_at_10_after": round(recall(found, truth), 4),
    }


def machine_info(libs: list[Lib], load_at_start: float) -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": round(load_at_start, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "versions": {lib.name: lib.version() for lib in libs},
    }


def print_table(rows: list[Row], skipped: dict[str, str]) -> None:
    header = f"{'library':<22} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10} {'batch qps':>10}"
    header += f" {'MB':>7}  deletes"
    print(header)
    print("-" * len(header))
    for r in rows:
        d = r.deletes
        deletes = (
            f"yes ({d['ms_per_1k']} ms/1k, recall after {d['recall_at_10_after']}, "
            f"{d['deleted_ids_returned']} deleted ids returned)"
            if d["supported"]
            else f"no: {d['reason']}"
        )
        print(
            f"{r.library:<22} {r.build_s:>8.2f} {r.p50_ms:>8.3f} {r.p99_ms:>8.3f} {r.recall_at_10:>10.4f}"
            f" {r.batch_qps:>10.0f} {r.index_mb:>7.1f}  {deletes}"
        )
    for name, reason in skipped.items():
        print(f"{name:<22} skipped: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--libs", default="usearch,hnswlib,faiss")
    parser.add_argument("--embedswitch", action="store_true", help="also time embedswitch's HnswIndex")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    names = args.libs.split(",") + (["embedswitch"] if args.embedswitch else [])
    libs: list[Lib] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            libs.append(FACTORIES[name](args.dim))
        except ImportError as exc:
            skipped[name] = f"not installed ({exc}); pip install it to include it"
            print(f"skipping {name}: {skipped[name]}")

    print(f"data: {args.n} x {args.dim} clustered unit vectors, {args.queries} queries")
    load_at_start = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cpus, load average {load_at_start:.1f} at start")
    data, queries = clustered(args.n, args.queries, args.dim, args.seed)
    truth = exact_top_k(data, queries)
    rows = []
    for lib in libs:
        print(f"running {lib.name} ...", flush=True)
        rows.append(measure(lib, data, queries, truth, args.seed))
    print()
    print_table(rows, skipped)

    report = {
        "benchmark": "index",
        "params": {"n": args.n, "dim": args.dim, "queries": args.queries, "k": K, "seed": args.seed},
        "hnsw_params": {"M": M, "ef_construction": EF_CONSTRUCTION, "ef_search": EF_SEARCH, "metric": "ip"},
        "data": (
            f"Gaussian mixture ({max(1, args.n // 200)} clusters, center spread {CENTER_SPREAD}, "
            f"noise {CLUSTER_NOISE}) in {LATENT_DIM}-dim latent space, projected to {args.dim} dims "
            f"+ noise {AMBIENT_NOISE}, unit-normalised"
        ),
        "machine": machine_info(libs, load_at_start),
        "results": [asdict(r) for r in rows],
        "skipped": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
