"""The applier: replaying the log is a no-op for everything an index already holds."""

from __future__ import annotations

import numpy as np
from _checks import assert_end_state

from embedswitch import Engine


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
