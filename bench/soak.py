"""Soak: disk and memory over a bounded write/delete soak, with and without compaction.

Each round upserts ``records`` SciFact abstracts (ids reused round after round, texts changed),
deletes half of them and changes the traffic (one event), then waits until the version has
applied and checkpointed. With compaction the engine's maintenance runs after every round (change
log and events pruned, write-ahead logs truncated); without it nothing is pruned, as if
maintenance never ran. Each configuration runs in a child process of its own, one after the other
in this run, so its resident memory (peak RSS) is its own.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from embedswitch import Engine, EngineConfig

from ._common import load_scifact, ratio


@dataclass(frozen=True)
class Params:
    rounds: int
    records: int
    model: str = "minilm-static"

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        return cls(rounds=4, records=500) if quick else cls(rounds=40, records=5000)


def _size(directory: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in directory.rglob(pattern) if p.is_file())


def _soak(params: Params, compact: bool, texts: list[str]) -> dict[str, Any]:
    """One configuration, in a child process: per-round sizes, then the peak RSS."""
    config = EngineConfig(checkpoint_interval_s=0.5, maintenance_interval_s=86_400)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="embedswitch-soak-") as tmp:
        data = Path(tmp)
        with Engine.open(data, config) as engine:
            engine.create_collection("soak", {"name": "v1", "model": params.model})
            version = engine.collection("soak").get_version("v1")
            for n in range(params.rounds):
                for start in range(0, params.records, 500):
                    ids = range(start, min(params.records, start + 500))
                    rows = [{"id": f"r{i}", "text": f"{texts[(i + n) % len(texts)]} {n}"} for i in ids]
                    engine.upsert("soak", rows)
                for i in range(0, params.records, 2):
                    engine.delete("soak", f"r{i}")
                engine.set_traffic("soak", {"v1": 100})
                assert version.wait_applied(engine.collection("soak").head_seq(), 600)
                version.checkpoint()
                if compact:
                    engine.maintain()
                rounds.append(
                    {
                        "round": n + 1,
                        "data dir MB": round(_size(data) / 1e6, 2),
                        "WAL MB": round(_size(data, "*-wal") / 1e6, 2),
                        "log entries": len(engine.store.read_log("soak", 0, 10**9)),
                        "events": len(engine.store.events("soak", None, 10**9)),
                    }
                )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rounds": rounds, "peak_rss_mb": round(peak_mb, 1)}


def _in_child(params: Params, compact: bool, texts: list[str]) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(_soak, (params, compact, texts))
    return result


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = load_scifact()
    _, texts = data.docs(min(len(data.doc_ids), params.records))
    on = _in_child(params, True, texts)
    off = _in_child(params, False, texts)
    last_on, last_off = on["rounds"][-1], off["rounds"][-1]
    rows = [
        {"compaction": label, **r}
        for label, found in (("on", on), ("off", off))
        for r in found["rounds"]
        if r["round"] in (1, params.rounds // 2, params.rounds)
    ]
    summary = {
        "data dir MB, compaction on": last_on["data dir MB"],
        "data dir MB, compaction off": last_off["data dir MB"],
        "disk on/off": ratio(last_on["data dir MB"], last_off["data dir MB"]),
        "disk growth, last/middle round, on": ratio(
            last_on["data dir MB"], on["rounds"][params.rounds // 2 - 1]["data dir MB"]
        ),
        "peak RSS MB on / off": f"{on['peak_rss_mb']} / {off['peak_rss_mb']}",
    }
    return {
        "params": {**asdict(params), "writes": params.rounds * params.records * 3 // 2},
        "tables": {"soak (first, middle and last round)": rows},
        "summary": summary,
    }
