"""Durable backfill pages: what keeping each page costs beside embedding it.

A backfill page is written durably (its vectors in a fsynced segment file beside the index) and its
progress saved in the store before the status counts it. Per model, pages of ``batch`` SciFact
abstracts are embedded and written into a version's index, plain (kept by the next checkpoint, as
before) and durable on alternate pages, each durable one followed by its progress save on the real
store. ``overhead`` is what a durable page adds (durable write + save - plain write) as a share of a
plain page's serial time (embed + plain write). The backfill writes a page while the next ones are
being embedded, so its throughput loses at most that share.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any

from embedswitch.models import load_model, parse_model_spec
from embedswitch.store.base import BackfillState

from ._common import cycled, load_scifact, ms, stopwatch, temp_engine


@dataclass(frozen=True)
class Params:
    models: tuple[str, ...]
    pages: int  # per model, half of them durable
    batch: int = 256  # EngineConfig.backfill_batch's default

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        return cls(models=("hashing", "minilm-static"), pages=4 if quick else 40)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    texts = cycled(load_scifact().doc_texts, params.pages * params.batch)
    rows = [_measure(model, texts, params) for model in params.models]
    return {
        "params": asdict(params),
        "tables": {"per backfill page (ms, medians)": rows},
        "summary": {f"{row['model']} durable page overhead": row["overhead"] for row in rows},
        "notes": ["overhead is an upper bound: the backfill overlaps a page's write with embedding"],
    }


def _measure(model_name: str, texts: list[str], params: Params) -> dict[str, Any]:
    model = load_model(parse_model_spec(model_name))
    timings: dict[str, list[float]] = {"embed": [], "plain": [], "durable": [], "save": []}
    with temp_engine() as engine:
        engine.create_collection("pages", {"name": "v1", "model": model_name})
        version = engine.collection("pages").get_version("v1")
        state = BackfillState(upto_seq=0, total=len(texts))
        for page in range(params.pages):
            chunk = texts[page * params.batch : (page + 1) * params.batch]
            with stopwatch() as embed:
                vectors = model.encode(chunk, purpose="document")
            timings["embed"].append(embed.s)
            ids, durable = [f"p{page}-{i}" for i in range(len(chunk))], page % 2 == 1
            with stopwatch() as write:
                version.write("doc", ids, vectors, [1] * len(ids), durable=durable)
            timings["durable" if durable else "plain"].append(write.s)
            if durable:
                state = replace(state, done=state.done + len(chunk))
                with stopwatch() as save:
                    engine.store.save_version_progress("pages", "v1", 0, state, version.state)
                timings["save"].append(save.s)
    median = {name: statistics.median(values) for name, values in timings.items()}
    added = median["durable"] + median["save"] - median["plain"]
    return {
        "model": model_name,
        **{f"{name}_ms": ms(value) for name, value in median.items()},
        "overhead": round(added / (median["embed"] + median["plain"]), 4),
    }
