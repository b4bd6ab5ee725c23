"""A whole rollout under load on a real server: add, backfill, ramp, roll back, ramp again, retire.

Versions use hashing models with different seeds, whose spaces are nearly orthogonal, so every hit's
score can be recomputed with the answering version's model: a query embedded by one version and
matched against another version's index would not reproduce its score.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from _checks import assert_end_state
from _indexes import ENGINES, require_engine
from conftest import ServerThread

from embedswitch import Engine
from embedswitch.models import load_model, parse_model_spec

SPECS = {"v1": {"type": "hashing", "seed": 0}, "v2": {"type": "hashing", "seed": 1}}
WORDS = [
    "protein",
    "cell",
    "gene",
    "cancer",
    "virus",
    "brain",
    "heart",
    "drug",
    "trial",
    "mouse",
    "human",
    "risk",
    "blood",
    "immune",
]
QUERIES = [f"{a} {b}" for a in WORDS[:7] for b in WORDS[7:]]
FILTER = {"bucket": {"in": [0, 1]}}
"""Half the records match: the filter of the searches that take one, checked on each hit's fields."""


@dataclass
class Answer:
    start: float
    end: float
    key: str | None
    query: str
    status: int
    version: str | None
    hits: list[dict]
    filtered: bool = False


class Load:
    def __init__(self, url: str, history: dict[str, set[str]]) -> None:
        self.url = url
        self.history = history
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._search, args=(t,)) for t in range(4)]
        self.threads.append(threading.Thread(target=self._write))

    def _search(self, t: int) -> None:
        rng = random.Random(t)
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                query = rng.choice(QUERIES)
                key = f"user{rng.randrange(40)}" if rng.random() < 0.6 else None
                body = {"text": query, "k": 5, **({"key": key} if key else {})}
                filtered = t % 2 == 1 and rng.random() < 0.5
                if filtered:
                    body["filter"] = FILTER
                start = time.monotonic()
                r = http.post("/v1/collections/c/search", json=body)
                end = time.monotonic()
                data = r.json()
                hits = data.get("hits", [])
                answer = Answer(start, end, key, query, r.status_code, data.get("version"), hits, filtered)
                with self.lock:
                    self.answers.append(answer)

    def _write(self) -> None:
        rng = random.Random(99)
        n = 0
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                n += 1
                if rng.random() < 0.2:
                    rid = f"d{rng.randrange(300):03}"
                    r = http.delete(f"/v1/collections/c/records/{rid}")
                    assert r.status_code in (200, 404), r.text
                else:
                    records = []
                    for _ in range(rng.randint(1, 4)):
                        rid = f"d{rng.randrange(300):03}"
                        text = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(WORDS)} rev {n}"
                        with self.lock:
                            self.history[rid].add(text)
                        records.append({"id": rid, "text": text, "fields": {"bucket": rng.randrange(4)}})
                    r = http.put("/v1/collections/c/records", json={"records": records})
                    assert r.status_code == 200, r.text
                time.sleep(0.01)

    def __enter__(self) -> Load:
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(timeout=60)


LEXICAL = {
    "bm25": {"type": "bm25"},
    "hybrid": {"type": "hybrid", "dense": {"type": "hashing", "seed": 1}, "fusion": "rrf"},
}
"""Lexical versions: the migration keyword -> hybrid under load, and BM25 as the new version (so
that it, too, meets the end-state check)."""


@pytest.mark.parametrize(
    ("v1", "v2", "index_type"),
    [
        ("hashing", "hashing", "auto"),
        *[("hashing", "hashing", engine) for engine in ENGINES],
        ("bm25", "hybrid", "auto"),
        ("hashing", "bm25", "auto"),
    ],
    ids=["hashing", *ENGINES, "bm25-hybrid", "hashing-bm25"],
)
def test_rollout_under_load(engine: Engine, v1: str, v2: str, index_type: str) -> None:
    """v2 is a dense, BM25 or hybrid version; a dense v2's index is of each type: the engine indexes
    (in their embedded modes) go through the same rollout, the same checks and the end-state check."""
    if index_type in ENGINES:
        require_engine(index_type)
    specs = {"v1": LEXICAL.get(v1, SPECS["v1"]), "v2": LEXICAL.get(v2, SPECS["v2"])}
    rng = random.Random(5)
    history: dict[str, set[str]] = defaultdict(set)
    seed_docs = []
    for i in range(300):
        text = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(WORDS)} rev 0"
        history[f"d{i:03}"].add(text)
        seed_docs.append({"id": f"d{i:03}", "text": text, "fields": {"bucket": i % 4}})
    engine.create_collection("c", {"name": "v1", "model": specs["v1"]})
    engine.upsert("c", seed_docs)
    assignments: list[tuple[float, float, set[str]]] = [(0.0, 0.0, {"v1"})]

    with (
        ServerThread(engine) as server,
        Load(server.url, history) as load,
        httpx.Client(base_url=server.url, timeout=60) as admin,
    ):

        def traffic(method: str, path: str, body: dict | None = None) -> None:
            before = time.monotonic()
            r = admin.request(method, path, json={} if body is None else body)
            assert r.status_code == 200, r.text
            live = {v for v, w in r.json()["weights"].items() if w > 0}
            assignments.append((before, time.monotonic(), live))
            time.sleep(0.6)

        v2 = {"name": "v2", "model": specs["v2"], "index": {"type": index_type}}
        r = admin.post("/v1/collections/c/versions", json=v2)
        assert r.status_code == 202 and r.json()["state"] == "building"
        deadline = time.monotonic() + 60
        while admin.get("/v1/collections/c/versions/v2").json()["state"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for weights in ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}):
            traffic("PUT", "/v1/collections/c/traffic", {"weights": weights})
        traffic("POST", "/v1/collections/c/versions/v2/promote")
        for _ in range(3):  # 50/50, 90/10, then v1 alone again
            traffic("POST", "/v1/collections/c/rollback")
        assert assignments[-1][2] == {"v1"}
        for weights in ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}):
            traffic("PUT", "/v1/collections/c/traffic", {"weights": weights})
        traffic("POST", "/v1/collections/c/versions/v2/promote")
        r = admin.delete("/v1/collections/c/versions/v1")
        assert r.status_code == 200, r.text
        time.sleep(0.5)

    answers = load.answers
    assert len(answers) > 200
    assert [a for a in answers if a.status != 200] == []
    _check_versions_were_live(answers, assignments)
    _check_sticky(answers, assignments)
    _check_scores(answers, history, specs)
    _check_filtered(answers)
    assert {a.version for a in answers} == {"v1", "v2"}
    assert assert_end_state(engine, "c") == {"v2": engine.describe("c").records}


def _check_versions_were_live(
    answers: list[Answer], assignments: list[tuple[float, float, set[str]]]
) -> None:
    """Assignment i is in force from the start of its change until the end of the next change."""
    for a in answers:
        possible: set[str] = set()
        for i, (since, _, live) in enumerate(assignments):
            until = assignments[i + 1][1] if i + 1 < len(assignments) else float("inf")
            if since <= a.end and until >= a.start:
                possible |= live
        assert a.version in possible, f"{a.version} answered while only {possible} were live"


def _check_filtered(answers: list[Answer]) -> None:
    """Every hit of a filtered search matches the filter on the record's state it is returned with,
    whichever version answered (mid-rollout too), and the filter never leaves a search short."""
    filtered = [a for a in answers if a.filtered]
    assert len(filtered) > 50 and {a.version for a in filtered} == {"v1", "v2"}
    for a in filtered:
        assert all(hit["fields"].get("bucket") in (0, 1) for hit in a.hits), a
    full = sum(len(a.hits) == 5 for a in filtered)
    assert full >= 0.95 * len(filtered)  # a record changed between ranking and reading its fields drops


def _check_sticky(answers: list[Answer], assignments: list[tuple[float, float, set[str]]]) -> None:
    epochs = [(assignments[i][1], assignments[i + 1][0]) for i in range(len(assignments) - 1)]
    epochs.append((assignments[-1][1], float("inf")))
    for lo, hi in epochs:
        seen: dict[str, set[str]] = defaultdict(set)
        for a in answers:
            if a.key and a.start > lo and a.end < hi:
                seen[a.key].add(a.version or "")
        flipped = {k: v for k, v in seen.items() if len(v) > 1}
        assert not flipped, f"sticky keys changed version under fixed weights: {flipped}"


def _check_scores(answers: list[Answer], history: dict[str, set[str]], specs: dict[str, dict]) -> None:
    """Each hit's score is the answering version's: its model's for a text the record had; for BM25
    a positive score of a record that had a query word; for an RRF hybrid a fused score (the sum of
    1 / (60 + rank) over one or both of its parts), of a record that had a query word or a vector."""
    models = {name: load_model(parse_model_spec(spec)) for name, spec in specs.items()}
    checked = 0
    for a in answers:
        spec = specs[a.version or ""]
        if spec["type"] in ("bm25", "hybrid"):
            checked += _check_lexical_scores(a, history, spec["type"])
            continue
        model = models[a.version or ""]
        q = model.encode([a.query], "query")[0]
        for hit in a.hits:
            texts = sorted(history[hit["id"]])
            own = model.encode(texts) @ q
            assert np.abs(own - hit["score"]).min() < 1e-4, (
                f"hit {hit['id']} score {hit['score']} is not {a.version}'s score for any text it had"
            )
            checked += 1
    assert checked > 500


RRF_SCORES = sorted(
    {1 / (60 + r) for r in range(1, 101)}
    | {1 / (60 + r) + 1 / (60 + s) for r in range(1, 101) for s in range(1, 101)}
)


def _check_lexical_scores(a: Answer, history: dict[str, set[str]], kind: str) -> int:
    words = set(a.query.split())
    for hit in a.hits:
        if kind == "bm25":
            assert hit["score"] > 0, f"bm25 hit {hit['id']} scored {hit['score']}"
            had_word = any(words & set(text.split()) for text in history[hit["id"]])
            assert had_word, f"bm25 hit {hit['id']} never had a word of {a.query!r}"
        else:
            at = bisect.bisect_left(RRF_SCORES, hit["score"])
            near = min(RRF_SCORES[max(at - 1, 0) : at + 1], key=lambda score: abs(score - hit["score"]))
            assert abs(near - hit["score"]) < 1e-12, (
                f"hybrid hit {hit['id']} scored {hit['score']}, not a reciprocal-rank-fusion score"
            )
    return len(a.hits)


@pytest.mark.parametrize("precision", ["f16", "i8"])
def test_reduced_precision_version_rolls_out_and_passes_the_end_state_check(
    engine: Engine, precision: str
) -> None:
    """A usearch version at reduced precision backfills under writes, is promoted, and passes the
    end-state check with its recall bound; the same check fails once its vectors go wrong."""
    docs = [{"id": f"d{i:03}", "text": f"{WORDS[i % len(WORDS)]} document {i}"} for i in range(400)]
    engine.create_collection("c", {"name": "v1", "model": SPECS["v1"]})
    engine.upsert("c", docs[:300])
    index = {"type": "usearch", "precision": precision}
    engine.add_version("c", {"name": "v2", "model": SPECS["v2"], "index": index})
    engine.upsert("c", docs[300:])  # streamed while v2 backfills
    engine.delete("c", "d007")
    engine.wait_ready("c", "v2", 60)
    engine.promote("c", "v2")
    engine.retire("c", "v1")
    v2 = engine.collection("c").get_version("v2")
    assert v2.index("doc").precision == precision  # type: ignore[union-attr]
    assert assert_end_state(engine, "c") == {"v2": 399}

    stored = v2.index("doc")
    assert stored is not None
    wrong = np.roll(stored.get(["d001"])["d001"], 1)[None, :]  # not d001's text's vector any more
    stored.upsert(["d001"], wrong, [10**6])
    with pytest.raises(AssertionError, match="not of the latest text"):
        assert_end_state(engine, "c")
