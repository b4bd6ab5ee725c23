"""What the indexes kept by a vector engine of their own (``qdrant``, ``milvus``) share: the name of
an index's collection in the engine, the meta stored with it, the sizes they report, and
``EngineIndex``, their base: one client whose calls take turns in the embedded mode, its errors
as ``Unavailable``, and the closed check."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from embedswitch._errors import EmbedswitchError, IndexMismatch, Unavailable
from embedswitch.index._checks import closed
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
    """Bytes of the files under ``directory`` (0 if it is gone). An engine writes there while this
    counts: a file or directory removed meanwhile (Qdrant local mode's ``storage.sqlite-journal``)
    counts nothing, where it failed the version's description with a 500."""
    total = 0
    for root, _, files in os.walk(directory):  # os.walk skips a directory gone meanwhile
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


Seen = tuple[int, bool]
"""(seq, live) of an id, as an engine or a ledger holds it."""


def passes(stored: Seen | None, seq: int) -> bool:
    """Whether a write at ``seq`` passes the guard of an id last seen as ``stored``."""
    return stored is None or seq > stored[0]


class _Client(Protocol):
    def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Client)


@contextlib.contextmanager
def translated(
    engine: str,
    errors: tuple[type[BaseException], ...],
    where: str,
    meta: IndexMeta | None = None,
    server: str | None = None,
) -> Iterator[None]:
    """The client's ``errors`` (an unreachable server, a refused request) as ``Unavailable``
    naming ``engine``, ``where`` and the ``server``."""
    context: dict[str, str] = {} if meta is None else {"collection": meta.collection, "version": meta.version}
    if server is not None:
        context["url"] = server
    try:
        yield
    except EmbedswitchError:
        raise
    except errors as exc:
        raise Unavailable(f"{engine} failed for {where}: {exc}", **context) from exc


class EngineIndex(ABC, Generic[ClientT]):
    """What ``QdrantIndex`` and ``MilvusIndex`` share: the engine collection ``name`` of ``meta``,
    one client for every call (a server's client is thread-safe; the embedded modes' are not, so
    their calls take turns), a write lock for the index's one writer, and ``close``."""

    engine: ClassVar[str]
    """The engine's name in messages ("Qdrant")."""
    errors: ClassVar[tuple[type[BaseException], ...]]
    """What its client raises for an unreachable server or a refused request."""
    precision = "f32"

    def __init__(self, client: ClientT, name: str, meta: IndexMeta, server: str | None, where: str) -> None:
        self.meta = meta
        self.name = name
        self._client = client
        self._server = server is not None
        self._url = server
        self._where = where
        self._write_lock = threading.Lock()
        self._calls: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if self._server else threading.Lock()
        )
        self._closed = False

    def memory_bytes(self) -> int:
        """0 for a server (the vectors live there); in the embedded mode the vectors' bytes (the
        engine's own bookkeeping not counted)."""
        return 0 if self._server else len(self) * self.meta.dim * 4

    @abstractmethod
    def __len__(self) -> int:
        """Live vectors (tombstones not counted)."""

    def close(self) -> None:
        """Stop using the index; its collection stays."""
        if not self._closed:
            self._closed = True
            with self._calls:
                self._client.close()

    def __repr__(self) -> str:
        m, where = self.meta, self._where
        return f"{type(self).__name__}({m.collection!r}/{m.version!r}/{m.kind!r}, {self.name!r} at {where})"

    @contextlib.contextmanager
    def _call(self) -> Iterator[ClientT]:
        """The client, for one call (taking turns in the embedded mode), its errors as ``Unavailable``."""
        with self._translated(), self._calls:
            self._check_open()
            yield self._client

    def _translated(self) -> contextlib.AbstractContextManager[None]:
        m = self.meta
        return self.translating(f"index {m.collection}/{m.version}/{m.kind} ({self.name})", m, self._url)

    @classmethod
    def translating(
        cls, where: str, meta: IndexMeta | None = None, server: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """The client's ``errors`` in the block as ``Unavailable``, naming the engine and ``where``."""
        return translated(cls.engine, cls.errors, where, meta, server)

    def _check_open(self) -> None:
        if self._closed:
            raise closed(self.meta)
