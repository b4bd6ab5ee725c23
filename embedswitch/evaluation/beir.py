"""BEIR data sets on disk: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

Corpus = dict[str, dict[str, str]]
Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]


def load_beir(directory: str | Path, split: str = "test") -> tuple[Corpus, Queries, Qrels]:
    """Read a BEIR data set: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Returns ``(corpus, queries, qrels)``: ``corpus`` maps a document id to ``{"title", "text"}``
    (in file order), ``queries`` maps a query id to its text and holds only the queries judged in
    ``split``, and ``qrels`` maps a query id to ``{doc_id: relevance}``. The qrels file has a header
    line; its line endings may be ``\\n`` or ``\\r\\n``. Raises ``FileNotFoundError`` naming the
    missing file, and ``ValueError`` for a qrels query that ``queries.jsonl`` lacks.
    """
    root = Path(directory)
    corpus: Corpus = {}
    for row in _jsonl(root / "corpus.jsonl"):
        corpus[str(row["_id"])] = {"title": row.get("title") or "", "text": row.get("text") or ""}
    queries, qrels = load_judgments(root, split)
    return corpus, queries, qrels


def load_judgments(directory: str | Path, split: str = "test") -> tuple[Queries, Qrels]:
    """The judged queries of a BEIR data set without its corpus: ``(queries, qrels)`` as
    ``load_beir`` returns them, with the same errors."""
    root = Path(directory)
    qrels = _qrels(root / "qrels" / f"{split}.tsv")
    all_queries = {str(row["_id"]): str(row["text"]) for row in _jsonl(root / "queries.jsonl")}
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise ValueError(
            f"{len(missing)} queries judged in qrels/{split}.tsv are not in queries.jsonl "
            f"(e.g. {', '.join(missing[:3])}); the data set is incomplete"
        )
    return {qid: text for qid, text in all_queries.items() if qid in qrels}, qrels


def document_text(doc: Mapping[str, str]) -> str:
    """The text embedded for a BEIR document: ``"{title} {text}"``, or the text alone without a title."""
    title, text = doc.get("title") or "", doc.get("text") or ""
    return f"{title} {text}" if title else text


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _qrels(path: Path) -> Qrels:
    qrels: Qrels = {}
    with path.open(encoding="utf-8", newline="") as handle:
        next(handle, None)  # header: query-id, corpus-id, score
        for number, line in enumerate(handle, start=2):
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected query-id, corpus-id and score, got {line!r}")
            qid, doc_id, score = fields
            qrels.setdefault(qid, {})[doc_id] = int(score)
    return qrels
