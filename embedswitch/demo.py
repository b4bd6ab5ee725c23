"""The scifact demo, and reading JSONL record files, with no command-line dependencies.

``ensure_demo(engine)`` makes sure collection ``scifact`` exists and holds the corpus: it creates the
collection on first use, then upserts every record (the store skips unchanged ones, so a re-run on an
existing data dir only writes what changed) and waits until the serving versions have applied it.

``read_records`` and ``ingest_file`` are shared with ``embedswitch ingest``: a file holds one record
per line, either ``{"id", "text", "kind"?, "fields"?}`` or a BEIR corpus line
``{"_id", "title", "text", "metadata"?}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from ._errors import CollectionNotFound, InvalidRequest
from .engine import Engine
from .results import WriteAck
from .specs import MAX_BATCH, RecordIn, describe_errors

DEMO_COLLECTION = "scifact"
DEMO_VERSION = "v1"
DEMO_MODEL = "minilm-static"
SHARED_CORPUS = Path("../shared/data/scifact/corpus.jsonl")
SAMPLE_CORPUS = Path(__file__).parent / "data" / "sample_corpus.jsonl"

_NATIVE_KEYS = {"id", "text", "kind", "fields", "vector"}
_BEIR_KEYS = {"_id", "title", "text", "metadata"}


class Writer(Protocol):
    """What ingestion writes to: an ``Engine`` in process or a ``Client`` over HTTP."""

    def upsert(self, collection: str, records: list[dict[str, Any]]) -> WriteAck: ...


# -- reading record files ---------------------------------------------------------------------


def count_records(path: Path) -> int:
    """The number of non-blank lines in ``path``: the records ``read_records`` will yield."""
    with path.open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def read_records(path: Path, kind: str = "doc") -> Iterator[dict[str, Any]]:
    """Each non-blank line of ``path`` as a record dict ready to upsert, in file order.

    ``kind`` is the kind of records that name none (and of every BEIR line). Raises
    ``InvalidRequest`` naming the file and line number at the first line that is not a valid record;
    nothing after that line is read.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield parse_line(raw, kind)
            except ValueError as exc:
                raise InvalidRequest(f"{path}, line {number}: {exc}", file=str(path), line=number) from None


def parse_line(raw: bytes, kind: str = "doc") -> dict[str, Any]:
    """One JSONL line as a validated record dict; ``ValueError`` saying what is wrong otherwise."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    record = _from_beir(data, kind) if "_id" in data and "id" not in data else _from_native(data, kind)
    try:
        return RecordIn.model_validate(record).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise ValueError(describe_errors(exc)) from None


def _from_native(data: dict[str, Any], kind: str) -> dict[str, Any]:
    extra = sorted(set(data) - _NATIVE_KEYS)
    if extra:
        raise ValueError(
            f"unknown keys {extra}; a record has id, text (or vector) and optionally kind and fields "
            "(or, for BEIR corpus lines, _id, title, text and metadata)"
        )
    return {"kind": kind, **data, "id": _id(data.get("id"), "id")}


def _from_beir(data: dict[str, Any], kind: str) -> dict[str, Any]:
    extra = sorted(set(data) - _BEIR_KEYS)
    if extra:
        raise ValueError(f"unknown keys {extra} in a BEIR corpus line (keys: _id, title, text, metadata)")
    title, text, metadata = data.get("title") or "", data.get("text"), data.get("metadata") or {}
    if not isinstance(title, str) or not isinstance(text, str):
        raise ValueError("BEIR 'title' and 'text' must be strings")
    if not isinstance(metadata, dict):
        raise ValueError("BEIR 'metadata' must be an object")
    fields = {**metadata, **({"title": title} if title else {})}
    return {
        "id": _id(data.get("_id"), "_id"),
        "kind": kind,
        "text": f"{title} {text}" if title else text,
        "fields": fields,
    }


def _id(value: Any, key: str) -> Any:
    """Integer ids become strings (ids are strings); anything else is left for validation to judge."""
    if value is None:
        raise ValueError(f"missing {key!r}; every record needs an id")
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# -- ingesting --------------------------------------------------------------------------------


@dataclass
class IngestReport:
    """What an ingestion wrote so far: records sent, how many of them changed, the last seq."""

    records: int = 0
    changed: int = 0
    seq: int | None = None


def ingest_file(
    writer: Writer,
    collection: str,
    path: Path,
    batch: int = 256,
    kind: str = "doc",
    on_batch: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Upsert every record of ``path`` in batches of ``batch``; ``on_batch`` sees the running report.

    At a malformed line the records before it are still sent and nothing after it; the raised
    ``InvalidRequest`` names the line. Re-running is safe: unchanged records are skipped.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise InvalidRequest(f"batch size {batch} is out of range; use 1 to {MAX_BATCH}")
    report = IngestReport()
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        ack = writer.upsert(collection, pending)
        report.records += ack.count
        report.changed += ack.changed
        report.seq = ack.seq
        pending.clear()
        if on_batch is not None:
            on_batch(report)

    try:
        for record in read_records(path, kind):
            pending.append(record)
            if len(pending) >= batch:
                flush()
    except InvalidRequest as exc:
        if pending:
            flush()
        raise InvalidRequest(
            f"{exc.message}. The {report.records} records before it were sent, nothing after it; "
            "fix the line and re-run (unchanged records are skipped)",
            **exc.context,
        ) from None
    if pending:
        flush()
    return report


# -- the demo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoProgress:
    """A step of ``ensure_demo``: ``create`` (about to create the collection and load its model),
    ``ingest`` (``done`` of ``total`` records sent) or ``index`` (waiting for versions to apply)."""

    stage: Literal["create", "ingest", "index"]
    done: int = 0
    total: int = 0
    detail: str = ""


@dataclass(frozen=True)
class DemoReport:
    collection: str
    created: bool
    corpus: Path
    records: int
    changed: int
    head_seq: int
    serving: Sequence[str]


def default_corpus(cwd: Path | None = None) -> Path:
    """``../shared/data/scifact/corpus.jsonl`` under ``cwd`` when present, else the shipped sample."""
    shared = (cwd or Path.cwd()) / SHARED_CORPUS
    return shared.resolve() if shared.is_file() else SAMPLE_CORPUS


def ensure_demo(
    engine: Engine,
    corpus_path: Path | None = None,
    progress_callback: Callable[[DemoProgress], None] | None = None,
    model: str = DEMO_MODEL,
    collection: str = DEMO_COLLECTION,
    batch: int = 256,
) -> DemoReport:
    """Make ``collection`` exist and hold the corpus, indexed by every version that serves traffic.

    A new collection gets version ``v1`` on ``model``. An existing one is used as it is, whatever
    its versions; only records whose text or fields changed are written again.
    """
    notify = progress_callback or (lambda _: None)
    corpus = corpus_path or default_corpus()
    created = not _exists(engine, collection)
    if created:
        notify(DemoProgress("create", detail=f"version {DEMO_VERSION} on model {model}"))
        engine.create_collection(collection, {"name": DEMO_VERSION, "model": model})
    total = count_records(corpus)
    notify(DemoProgress("ingest", 0, total))
    report = ingest_file(
        engine, collection, corpus, batch, on_batch=lambda r: notify(DemoProgress("ingest", r.records, total))
    )
    serving = sorted(engine.describe(collection).traffic)
    for name in serving:
        notify(DemoProgress("index", detail=name))
        engine.wait_ready(collection, name)
    return DemoReport(
        collection=collection,
        created=created,
        corpus=corpus,
        records=report.records,
        changed=report.changed,
        head_seq=engine.describe(collection).head_seq,
        serving=serving,
    )


def _exists(engine: Engine, collection: str) -> bool:
    try:
        engine.describe(collection)
    except CollectionNotFound:
        return False
    return True
