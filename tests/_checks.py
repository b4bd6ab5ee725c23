"""End-state checks shared by the crash, race and rollout tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from embedswitch import Engine, InputRejected
from embedswitch.index.hybrid import TextIndex

PRECISION_ATOL = {"f32": 1e-4, "f16": 2e-3, "i8": 3e-2}
"""How far a stored number may be from the model's, by the index's precision (unit vectors)."""


def assert_end_state(engine: Engine, collection: str, min_recall: float = 0.95) -> dict[str, int]:
    """Every version's indexes hold exactly the live records, each embedded from its latest text
    (a version of model "none": exactly those with a vector, each holding its latest vector).

    A lexical version (``bm25``, ``hybrid``) holds each live record's latest text in its BM25
    index, and a hybrid the dense model's vector of it as well.

    A reduced-precision index (``precision`` f16 or i8) holds rounded vectors: each must be within
    its precision of the model's, and searching the model's vectors must find their own record in
    the top 10 for at least ``min_recall`` of them (the rounding must not lose records).

    Records a version holds in quarantine (its model rejected their latest text) are the one
    exception, and only in that version: it holds no vector of their latest text, and at most one
    of an earlier text; every other record must be exactly as above."""
    target = engine.collection(collection)
    head = target.head_seq()
    live: dict[str, dict[str, str]] = {}
    own: dict[str, dict[str, bytes]] = {}  # the records' own vectors, for versions of model "none"
    for record in engine.store.scan_records(collection, head, None, 10**9):
        live.setdefault(record.kind, {})[record.id] = record.text
        if record.vector is not None:
            own.setdefault(record.kind, {})[record.id] = record.vector
    checked = {}
    for name, version in target.versions.items():
        assert version.wait_applied(head, 60), f"{name} did not catch up with seq {head}"
        kinds = set(live) | set(version.kinds())
        held_back = {(row.kind, row.id) for row in version.quarantine.info().records}
        if version.user_model is not None:
            _assert_derived_users(engine, collection, name)
            kinds.discard("user")
        for kind in kinds:
            expected = (own if version.takes_vectors else live).get(kind, {})
            index = version.index(kind)
            ids = set(index.ids()) if index is not None else set()
            quarantined = {rid for k, rid in held_back if k == kind}
            _assert_quarantined(version, kind, quarantined, live.get(kind, {}))
            expected = {rid: value for rid, value in expected.items() if rid not in quarantined}
            ids -= quarantined
            if not version.embeds_text:  # loaded vectors: never a deleted record, never a new one
                extra = ids - set(expected)
                assert not extra, f"{name}/{kind}: deleted records present (e.g. {sorted(extra)[:3]})"
                continue
            missing, extra = set(expected) - ids, ids - set(expected)
            assert not missing and not extra, (
                f"{name}/{kind}: {len(missing)} live records missing (e.g. {sorted(missing)[:3]}), "
                f"{len(extra)} deleted records present (e.g. {sorted(extra)[:3]})"
            )
            if not expected:
                continue
            order = sorted(expected)
            if isinstance(index, TextIndex):  # a lexical version: its texts are the latest ones
                texts = index.lexical.get(order)
                stale = [i for i in order if texts.get(i) != live[kind][i]]
                assert not stale, f"{name}/{kind}: {len(stale)} texts are not the latest: {stale[:5]}"
                if index.vectors is None:
                    continue
            stored = index.get(order)
            if version.takes_vectors:  # the record's own vector, as the version normalises it
                want = version.own_vectors([own[kind][i] for i in order])
            else:
                want = version.model.encode([live[kind][i] for i in order], purpose="document")
            got = np.stack([stored[i] for i in order])
            atol = PRECISION_ATOL[getattr(index, "precision", "f32")]
            stale = [order[r] for r in np.where(np.abs(got - want).max(axis=1) > atol)[0]]
            assert not stale, f"{name}/{kind}: {len(stale)} vectors are not of the latest text: {stale[:5]}"
            if atol > PRECISION_ATOL["f32"]:
                _assert_recall(index, order, want, min_recall, f"{name}/{kind}")
        checked[name] = sum(len(v) for v in live.values())
    return checked


def _assert_quarantined(version: Any, kind: str, quarantined: set[str], texts: dict[str, str]) -> None:
    """A quarantined record is live (a delete resolves it) and has no vector of its latest text."""
    if not quarantined:
        return
    gone = quarantined - set(texts)
    assert not gone, f"{version.name}/{kind}: deleted records still quarantined: {sorted(gone)[:3]}"
    index = version.index(kind)
    held = index.get(sorted(quarantined)) if index is not None else {}
    for rid, vector in held.items():
        try:
            want = version.model.encode([texts[rid]], purpose="document")[0]
        except InputRejected:  # rejected still: what it holds can't be of that text
            continue
        assert np.abs(vector - want).max() > 1e-4, f"{version.name}/{kind}/{rid}: quarantined, yet up to date"


def _assert_recall(index: Any, order: list[str], want: np.ndarray, min_recall: float, where: str) -> None:
    """Each record's model vector finds that record in the top 10 for ``min_recall`` of them."""
    hits = index.search(want.astype(np.float32), 10)
    found = sum(id_ in {hit[0] for hit in row} for id_, row in zip(order, hits, strict=True))
    assert found >= min_recall * len(order), (
        f"{where}: only {found} of {len(order)} records are in the top 10 for their own vector "
        f"(recall {found / len(order):.3f} < {min_recall})"
    )


def _assert_derived_users(engine: Engine, collection: str, name: str) -> None:
    """A history-mean version holds, for every user with an interaction on a live item, the mean
    of its own vectors of those items; and nothing for anyone else."""
    version = engine.collection(collection).versions[name]
    assert version.user_model is not None
    items = version.index("item")
    users = engine.store.interaction_users(collection)
    histories = engine.store.user_histories(collection, users)
    expected = {}
    for user in users:
        vector = version.derive_user(items, histories[user]) if items is not None else None
        if vector is not None:
            expected[user] = vector
    index = version.index("user")
    held = set(index.ids()) if index is not None else set()
    assert held == set(expected), f"{name}/user: ids differ: {sorted(held ^ set(expected))[:5]}"
    if expected:
        got = index.get(sorted(expected))
        stale = [u for u in expected if np.abs(got[u] - expected[u]).max() > 1e-4]
        assert not stale, f"{name}/user: {len(stale)} user vectors are not their history's mean: {stale[:5]}"
