"""What API keys and limits cost per request: search p50 with keys and a rate limit on vs off.

Two ``embedswitch serve`` processes over copies of one collection (SciFact abstracts, exact index,
``minilm-static``): one with no keys, one with three keys and a per-key rate limit high enough never
to refuse. One client sends searches back to back (with the read key where keys are on);
configurations alternate ``rounds`` times, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._common import latency_stats, load_scifact, ratio
from .serving import _build, _clients_with_headers, _embedswitch

KEYS = "read:bench-read,write:bench-write,admin:bench-admin"


@dataclass(frozen=True)
class Params:
    docs: int
    seconds: float
    rounds: int

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        return cls(docs=300, seconds=1.0, rounds=1) if quick else cls(docs=5000, seconds=6.0, rounds=3)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    queries = load_scifact().query_texts
    configs = {
        "off": ({}, {}),
        "keys + rate limit": (
            {"EMBEDSWITCH_API_KEYS": KEYS, "EMBEDSWITCH_RATE_LIMIT_PER_S": "1000000"},
            {"Authorization": "Bearer bench-read"},
        ),
    }
    latencies: dict[str, list[float]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="embedswitch-auth-") as tmp:
        base = Path(tmp) / "base"
        _build(base, "minilm-static", params.docs)
        for name in configs:
            shutil.copytree(base, Path(tmp) / name.replace(" ", "_"))
        for _ in range(params.rounds):
            for name, (env, headers) in configs.items():
                with _embedswitch(Path(tmp) / name.replace(" ", "_"), env) as url:
                    found = _clients_with_headers(url, 1, params.seconds, queries, headers)
                assert found["errors"] == 0, found
                latencies[name] += found["latencies"]
    rows = [{"auth": name, **latency_stats(values)} for name, values in latencies.items()]
    p50 = {row["auth"]: row["p50_ms"] for row in rows}
    return {
        "params": {**asdict(params), "index": "exact", "model": "minilm-static", "clients": 1},
        "tables": {"search latency, keys and limits on vs off": rows},
        "summary": {"p50 keys+limits / off": ratio(p50["keys + rate limit"], p50["off"])},
    }
