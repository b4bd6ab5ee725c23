"""Ingest throughput through the engine, next to the model's own ``encode`` throughput.

For each model: SciFact's documents are upserted into a fresh collection whose only version uses
that model, and the clock runs from the first upsert until the version has applied the last one
(durable write, change log, embedding, index). The raw figure is ``model.encode`` on the same texts
in chunks of the engine's ``apply_batch``, the batch the applier embeds, measured in the same run
right before and right after the ingest; the faster of the two is the reference, since a model may
warm up over a first pass (the hashing model caches word hashes). ``ingest / raw`` near 1 means the
engine adds little beyond the embedding itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from embedswitch import EngineConfig
from embedswitch.models import load_model

from ._common import (
    UPSERT_BATCH,
    encode_throughput,
    load_scifact,
    ratio,
    stopwatch,
    temp_engine,
    upsert_all,
    wait_applied,
)


@dataclass(frozen=True)
class Params:
    models: tuple[str, ...]
    docs: int | None  # None: the whole corpus
    minilm_docs: int | None = None  # a cap for the transformer (17-20 docs/s on 2 cores)

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(models=("hashing", "minilm-static"), docs=300)
        return cls(models=("hashing", "minilm-static", "minilm"), docs=None, minilm_docs=1500)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = load_scifact()
    ids, texts = data.docs(params.docs if params.docs is not None else len(data.doc_ids))
    config = EngineConfig()
    cap = params.minilm_docs
    rows = [
        _measure(model, ids[:cap], texts[:cap], config)
        if model == "minilm" and cap
        else _measure(model, ids, texts, config)
        for model in params.models
    ]
    return {
        "params": {
            **asdict(params),
            "records": len(ids),
            "apply_batch": config.apply_batch,
            "upsert_batch": UPSERT_BATCH,
            "data": "SciFact corpus, '{title} {text}'",
        },
        "tables": {"ingest throughput (records/s)": rows},
        "summary": {f"{row['model']} ingest/raw": row["ingest/raw"] for row in rows},
    }


def _measure(name: str, ids: list[str], texts: list[str], config: EngineConfig) -> dict[str, Any]:
    with stopwatch() as load:
        model = load_model(name)
    model.encode(texts[:8], purpose="document")  # warm-up: first calls allocate and compile
    before = encode_throughput(model, texts, config.apply_batch)
    with temp_engine(config) as engine:
        engine.create_collection("ingest", {"name": "v1", "model": name})
        with stopwatch() as total:
            with stopwatch() as writes:
                seq = upsert_all(engine, "ingest", ids, texts)
            wait_applied(engine, "ingest", "v1", seq)
    after = encode_throughput(model, texts, config.apply_batch)
    raw_rps = max(before["records_per_s"], after["records_per_s"])
    ingest_rps = round(len(ids) / total.s, 1)
    return {
        "model": name,
        "records": len(ids),
        "raw_encode_rps": raw_rps,
        "ingest_rps": ingest_rps,
        "ingest/raw": ratio(ingest_rps, raw_rps),
        "raw_rps_before": before["records_per_s"],
        "raw_rps_after": after["records_per_s"],
        "ingest_s": round(total.s, 3),
        "upserts_acked_s": round(writes.s, 3),
        "model_load_s": round(load.s, 3),
    }
