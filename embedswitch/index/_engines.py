"""What the indexes kept by a vector engine of their own (``qdrant``, ``milvus``) share: the name of
an index's collection in the engine, the meta stored with it, and the sizes they report."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from embedswitch._errors import IndexMismatch, Unavailable
from embedswitch.index.base import IndexMeta

T = TypeVar("T")

BATCH = 256
"""Points sent to the engine per request: a backfill page or a vector load goes in batches."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def collection_name(prefix: str, collection: str, version: str, kind: str) -> str:
    """The engine collection of one (collection, version, kind): readable, letters, digits and
    ``_`` only (what Milvus allows), and unique (a hash of the exact names ends it)."""
    digest = hashlib.blake2b(f"{collection}/{version}/{kind}".encode(), digest_size=4).hexdigest()
    return f"{version_prefix(prefix, collection, version)}{_UNSAFE.sub('_', kind)}_{digest}"


def version_prefix(prefix: str, collection: str, version: str) -> str:
    """What the names of every engine collection of one version start with."""
    return f"{prefix}_{_UNSAFE.sub('_', collection)}_{_UNSAFE.sub('_', version)}_"


def meta_fields(meta: IndexMeta) -> dict[str, Any]:
    """The meta as stored with an engine collection."""
    return dict(meta.__dict__)


def check_meta(meta: IndexMeta, stored: dict[str, Any] | None, name: str) -> None:
    """Raise ``IndexMismatch`` when the engine collection ``name`` was built by another model or
    holds another (collection, version, kind), ``Unavailable`` when it carries no meta of ours."""
    where = f"index {meta.collection}/{meta.version}/{meta.kind} (engine collection {name})"
    if not stored or any(field not in stored for field in ("collection", "version", "kind", "dim")):
        raise Unavailable(
            f"{where} exists but was not created by embedswitch (no meta); drop it or pick another "
            "prefix in the index spec",
            collection=meta.collection,
            version=meta.version,
        )
    for field in ("collection", "version", "kind"):
        if stored[field] != getattr(meta, field):
            raise IndexMismatch(
                f"{where} holds {field} {stored[field]!r}, not {getattr(meta, field)!r}; pick another prefix",
                field=field,
                on_disk=stored[field],
                requested=getattr(meta, field),
            )
    if stored.get("fingerprint") != meta.fingerprint:
        found = str(stored.get("fingerprint"))
        raise IndexMismatch(
            f"{where} was built by model {found[:12]}, not {meta.fingerprint[:12]}; open it with "
            "the same model spec, or create a new version for the new model",
            field="fingerprint",
            on_disk=found,
            requested=meta.fingerprint,
        )
    if int(stored["dim"]) != meta.dim:
        raise IndexMismatch(
            f"{where} holds {stored['dim']}-dim vectors, not {meta.dim}-dim; open it with the model "
            "that built it, or create a new version",
            field="dim",
            on_disk=int(stored["dim"]),
            requested=meta.dim,
        )


def batches(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def directory_bytes(directory: Path) -> int:
    """Bytes of the files under ``directory`` (0 if it is gone)."""
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
