"""The applier: replaying the log is a no-op for everything an index already holds; a new kind's
index reaches readers only once committed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from _checks import assert_end_state
from _postgres import pg_server, pg_uri  # noqa: F401 - fixtures
from conftest import FAST

from embedswitch import Engine, RecordNotFound
from embedswitch.index.pgvector import PgvectorIndex


def _docs(n: int) -> list[dict]:
    return [{"id": f"d{i}", "text": f"document {i} revision 0", "fields": {"n": i}} for i in range(n)]


def test_applier_is_idempotent(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    ack = engine.upsert("c", _docs(20))
    engine.upsert("c", [{"id": "d3", "text": "newer text"}])
    engine.delete("c", "d4")
    version = engine.collection("c").get_version("v1")
    head = engine.collection("c").head_seq()
    assert version.wait_applied(head, 10)
    index = version.index("doc")
    before = index.get(index.ids())
    # replay the whole log, twice: every entry is older than or equal to what the index holds
    for _ in range(2):
        version.applier.apply(engine.store.read_log("c", 0, 1000))
    after = index.get(index.ids())
    assert before.keys() == after.keys() and "d4" not in after
    assert all(np.array_equal(before[i], after[i]) for i in before)
    assert index.seq_of("d3") == ack.seq + 1
    assert_end_state(engine, "c")


class Held:
    """Fault injection: the applier's first vector write into an index of ``kind`` waits, inside its
    transaction, until the test lets it go: the window in which a reader once found the index
    before its table was committed, held open (by itself the race is rare)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kind: str | None = None
        self.inside, self.go = threading.Event(), threading.Event()
        real = PgvectorIndex.upsert

        def held(
            index: PgvectorIndex,
            ids: Sequence[str],
            vectors: np.ndarray,
            seqs: Sequence[int],
            durable: bool = False,
        ) -> int:
            written = real(index, ids, vectors, seqs, durable)
            if index.meta.kind == self.kind and not self.inside.is_set():
                self.inside.set()
                self.go.wait(30)
            return written

        monkeypatch.setattr(PgvectorIndex, "upsert", held)

    def arm(self, kind: str) -> None:
        """Hold the next write into an index of ``kind``."""
        self.kind = kind
        self.inside.clear()
        self.go.clear()

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        """The block runs while the held write's transaction is open."""
        assert self.inside.wait(30)
        try:
            yield
        finally:
            self.go.set()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Held:
    return Held(monkeypatch)


def test_a_new_kinds_index_is_published_only_once_committed(
    tmp_path: Path,
    pg_uri: str,  # noqa: F811 - fixture
    held: Held,
) -> None:
    """A read of a kind whose very first write is being applied finds its index committed (empty
    until the write commits), never a table another transaction is still creating (in CI: 503,
    "relation es_indexes does not exist": the index was published before the applier's
    transaction that created it committed). The first round also creates ``es_indexes``."""
    with Engine.open(tmp_path / "data", FAST, store=pg_uri) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing", "index": {"type": "pgvector"}})
        version = engine.collection("c").get_version("v1")
        for kind in ("doc", "faq", "note"):
            held.arm(kind)
            ack = engine.upsert("c", [{"id": f"{kind}-1", "kind": kind, "text": f"a {kind}"}])
            with held.window():
                assert engine.search("c", {"text": "a", "kind": kind}).hits == []
            assert version.wait_applied(ack.seq, 30)
            assert [h.id for h in engine.search("c", {"text": "a", "kind": kind}).hits] == [f"{kind}-1"]


def test_derived_users_index_is_published_only_once_committed(
    tmp_path: Path,
    pg_uri: str,  # noqa: F811 - fixture
    held: Held,
) -> None:
    """The same for the derived users' index, first written by the batch of the first interaction."""
    with Engine.open(tmp_path / "data", FAST, store=pg_uri) as engine:
        model = {"type": "history-mean", "text": {"type": "hashing", "dim": 32}}
        engine.create_collection("shop", {"name": "v1", "model": model, "index": {"type": "pgvector"}})
        version = engine.collection("shop").get_version("v1")
        items = [{"id": f"i{i}", "kind": "item", "text": f"item {i}"} for i in range(5)]
        assert version.wait_applied(engine.upsert("shop", items).seq, 30)
        held.arm("user")
        ack = engine.add_interactions("shop", [{"user": "u", "item": "i1"}])
        with held.window(), pytest.raises(RecordNotFound):
            engine.recommend("shop", {"user": "u"})
        assert version.wait_applied(ack.seq, 30)
        assert "i1" not in {h.id for h in engine.recommend("shop", {"user": "u", "k": 5}).hits}
