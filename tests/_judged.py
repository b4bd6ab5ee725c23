"""A toy collection with judged queries whose metrics are checked by hand (offline evaluation
tests over the engine, HTTP and the CLI)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from embedswitch import Engine

# Word sets that share nothing, so the hashing model scores a query only against the documents
# that share its words: cosine = shared features / sqrt(query features * document features).
DOCS = {
    "a": "alpha apple avocado",
    "b": "bravo banana blueberry",
    "c": "charlie cherry coconut",
    "d": "delta date",
    "e": "echo elderberry",
    "f": "foxtrot fig",
    "g": "golf grape",
    "h": "hotel honeydew",
    "i": "india imbe",
    "j": "juliet jackfruit",
    "k": "kilo kiwi",
    "l": "lima lemon",
}
QUERIES = {
    "q1": "alpha apple avocado",  # a is the document itself: rank 1
    "q2": "bravo banana charlie",  # b shares 3 features (0.6), c shares 1 (0.2): [b, c, ...]
    "q3": "delta date echo",  # d shares 3 (0.77), e shares 1 (0.26): [d, e, ...]
    "q4": "zulu zebra",  # judged document is not in the collection
    "q5": "unjudged query",  # not in qrels: not run
}
QRELS = {"q1": {"a": 1}, "q2": {"c": 1}, "q3": {"d": 1, "e": 2}, "q4": {"nope": 1}}
# Hand-checked, per query (nDCG@10, recall@100, MRR@10):
#   q1: a at 1 -> 1, 1, 1
#   q2: c at 2 -> (1/log2 3) / 1 = 0.6309, 1, 1/2
#   q3: d (gain 1) at 1, e (gain 2) at 2 -> (1 + 2/log2 3) / (2 + 1/log2 3) = 0.8597, 1, 1
#   q4: nothing relevant is found -> 0, 0, 0
EXPECTED = {
    "q1": (1.0, 1.0, 1.0),
    "q2": (1 / math.log2(3), 1.0, 0.5),
    "q3": ((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)), 1.0, 1.0),
    "q4": (0.0, 0.0, 0.0),
}
MEANS = {
    "ndcg@10": sum(v[0] for v in EXPECTED.values()) / 4,
    "recall@100": 0.75,
    "mrr@10": 0.625,
}
V1 = {"name": "v1", "model": {"type": "hashing", "dim": 4096}}
V2 = {"name": "v2", "model": {"type": "hashing", "dim": 4096, "seed": 1}}
BODY: dict[str, Any] = {"versions": ["v1", "v2"], "queries": QUERIES, "qrels": QRELS, "k": 10}


def toy(engine: Engine) -> None:
    engine.create_collection("toy", V1)
    engine.upsert("toy", [{"id": rid, "text": text} for rid, text in DOCS.items()])
    engine.add_version("toy", V2)
    engine.wait_ready("toy", "v2", timeout_s=30)
    engine.wait_ready("toy", "v1", timeout_s=30)


def write_beir(root: Path) -> Path:
    """The toy queries and judgments as a BEIR folder (no corpus: the CLI does not read it)."""
    (root / "qrels").mkdir(parents=True)
    lines = "".join(f'{{"_id": "{qid}", "text": "{text}"}}\n' for qid, text in QUERIES.items())
    (root / "queries.jsonl").write_text(lines, encoding="utf-8")
    rows = "".join(f"{qid}\t{doc}\t{grade}\n" for qid, rels in QRELS.items() for doc, grade in rels.items())
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
    return root
