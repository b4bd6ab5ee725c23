"""Simulated users: judged queries, position-biased clicks, and a driver for the real API.

A simulated user issues a judged query (SciFact's test queries, or any BEIR data set), looks at
the ranked hits it gets back and clicks following a *position-based model* (PBM; Craswell et al.
2008, Chuklin et al. 2015) driven by the judgments:

- the hit at rank ``r`` (1-based) is examined with probability ``1 / r ** eta``;
- an examined hit is clicked with probability ``p_relevant`` if the judgments call it relevant
  (grade > 0), else ``p_irrelevant``; the hit's clicks are independent of the other hits';
- a click on a relevant hit converts with probability ``p_convert``.

So a better ranking (relevant documents higher) earns more clicks, and clicks on relevant documents
are far more frequent than clicks on irrelevant ones, but position matters as much as relevance:
the biases that make A/B tests on clicks noisy and interleaving sensitive are there.

Everything is seeded: session ``n`` of a ``Simulation`` with seed ``s`` draws its user, query and
clicks from ``numpy.random.default_rng([s, n])``, whatever the thread or order it runs in.

``Simulation.run`` drives a real ``Engine`` or ``Client``: each session searches with its user's
``key`` (so sticky routing applies) and posts a ``feedback`` event for each click and conversion
with the response's ``request_id``. ``ClickModel.clicks`` is the pure part, for benchmarks that
simulate many sessions over rankings computed once.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import httpx
import numpy as np

from .._errors import EmbedswitchError
from ..results import SearchResult
from .beir import Qrels, document_text, load_beir


@dataclass(frozen=True)
class ClickModel:
    """A position-based click model over judged hits (see the module docstring).

    ``depth`` is how many hits a user looks at, at most; hits below it are never clicked.
    """

    p_relevant: float = 0.8
    p_irrelevant: float = 0.05
    eta: float = 1.0
    p_convert: float = 0.3
    depth: int = 10

    def __post_init__(self) -> None:
        for name in ("p_relevant", "p_irrelevant", "p_convert"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability, from 0 to 1; got {value}")
        if self.eta < 0 or self.depth < 1:
            raise ValueError(f"eta must be >= 0 and depth >= 1; got eta={self.eta}, depth={self.depth}")

    def examine(self, rank: int) -> float:
        """The probability that a user looks at the hit of 1-based ``rank``."""
        return 0.0 if rank > self.depth else 1.0 / rank**self.eta

    def probabilities(self, ranked: Sequence[str], rels: Mapping[str, int]) -> np.ndarray:
        """Per hit of ``ranked`` (cut at ``depth``), the probability that it is clicked."""
        top = ranked[: self.depth]
        attract = np.array(
            [self.p_relevant if rels.get(doc_id, 0) > 0 else self.p_irrelevant for doc_id in top]
        )
        examine = 1.0 / np.arange(1, len(top) + 1, dtype=np.float64) ** self.eta
        return examine * attract

    def clicks(self, ranked: Sequence[str], rels: Mapping[str, int], rng: np.random.Generator) -> list[Click]:
        """One user's clicks on ``ranked`` (best first), top to bottom, with their conversions."""
        probs = self.probabilities(ranked, rels)
        draws = rng.random((2, len(probs)))
        out = []
        for position in np.flatnonzero(draws[0] < probs).tolist():
            doc_id = ranked[position]
            converted = rels.get(doc_id, 0) > 0 and bool(draws[1][position] < self.p_convert)
            out.append(Click(rank=position + 1, id=doc_id, converted=converted))
        return out


class Click(NamedTuple):
    rank: int  # 1-based position in the list the user saw
    id: str
    converted: bool


# -- data sets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgedSet:
    """Records to ingest, and judged queries over them."""

    records: list[dict[str, str]]  # {"id", "text"} ready to upsert
    queries: dict[str, str]  # query id -> text, judged queries only
    qrels: Qrels

    def texts(self) -> list[str]:
        return list(self.queries.values())


def judged_subset(
    directory: str | Path, queries: int | None = None, extra_docs: int = 0, seed: int = 0
) -> JudgedSet:
    """A BEIR data set cut down for fast tests and demos.

    Keeps the first ``queries`` judged test queries (all of them if None), every document they
    judge, and ``extra_docs`` other documents drawn at random (seeded) so the relevant ones are not
    alone; ``extra_docs=-1`` keeps the whole corpus. Documents embed as ``"{title} {text}"``.
    """
    corpus, all_queries, all_qrels = load_beir(directory, "test")
    kept = list(all_queries)[:queries] if queries is not None else list(all_queries)
    qrels = {qid: dict(all_qrels[qid]) for qid in kept}
    judged = {doc_id for rels in qrels.values() for doc_id in rels if doc_id in corpus}
    others = [doc_id for doc_id in corpus if doc_id not in judged]
    if extra_docs < 0:
        extra = set(others)
    else:
        extra = set(random.Random(seed).sample(others, min(extra_docs, len(others))))
    records = [
        {"id": doc_id, "text": document_text(doc)}
        for doc_id, doc in corpus.items()
        if doc_id in judged or doc_id in extra
    ]
    return JudgedSet(records=records, queries={qid: all_queries[qid] for qid in kept}, qrels=qrels)


# -- driving the API -------------------------------------------------------------------------------


class Target(Protocol):
    """What the simulation drives: an ``Engine`` in process or a ``Client`` over HTTP."""

    def search(
        self,
        collection: str,
        text: str | None = None,
        k: int = 10,
        kind: str = "doc",
        version: str | None = None,
        key: str | None = None,
        min_seq: int | None = None,
        like: dict[str, str] | None = None,
    ) -> SearchResult: ...

    def feedback(self, collection: str, event: dict[str, Any]) -> Any: ...


@dataclass
class VersionTally:
    sessions: int = 0
    clicked_sessions: int = 0
    clicks: int = 0
    conversions: int = 0


@dataclass
class SimulationReport:
    """What a run did; ``by_version`` is keyed by the ``version`` each response named."""

    sessions: int = 0
    clicks: int = 0
    conversions: int = 0
    by_version: dict[str, VersionTally] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # error code -> count
    server_errors: int = 0  # responses with a status of 500 or above

    def add(self, version: str, clicks: Sequence[Click]) -> None:
        tally = self.by_version.setdefault(version, VersionTally())
        conversions = sum(c.converted for c in clicks)
        tally.sessions += 1
        tally.clicked_sessions += bool(clicks)
        tally.clicks += len(clicks)
        tally.conversions += conversions
        self.sessions += 1
        self.clicks += len(clicks)
        self.conversions += conversions

    def fail(self, code: str, server_error: bool) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1
        self.server_errors += server_error


class Session(NamedTuple):
    number: int
    key: str  # the simulated user's routing key
    query_id: str


class Simulation:
    """Seeded simulated users issuing judged queries and clicking by ``model``.

    ``users`` distinct routing keys (``"user-0"``, ...) share the sessions; a session's user and
    query are drawn uniformly.
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        model: ClickModel | None = None,
        users: int = 1000,
        seed: int = 0,
        k: int = 10,
    ) -> None:
        judged = [qid for qid in queries if qid in qrels]
        if not judged:
            raise ValueError("no query has judgments; pass qrels for the queries")
        if users < 1:
            raise ValueError(f"users must be at least 1, got {users}")
        self.queries = dict(queries)
        self.qrels = {qid: dict(rels) for qid, rels in qrels.items()}
        self.query_ids = judged
        self.model = model or ClickModel()
        self.users = users
        self.seed = seed
        self.k = k
        self._lock = threading.Lock()

    def rng(self, number: int) -> np.random.Generator:
        """The random stream of session ``number``: the same on every run with the same seed."""
        return np.random.default_rng([self.seed, number])

    def session(self, number: int) -> Session:
        """Who session ``number`` is and what it asks."""
        return self._draw(number)[0]

    def play(self, number: int, ranked: Sequence[str]) -> list[Click]:
        """The clicks of session ``number`` on ``ranked``: a pure function of the seed, the number
        and the list."""
        session, rng = self._draw(number)
        return self.model.clicks(ranked, self.qrels[session.query_id], rng)

    def _draw(self, number: int) -> tuple[Session, np.random.Generator]:
        rng = self.rng(number)
        user = int(rng.integers(self.users))
        query_id = self.query_ids[int(rng.integers(len(self.query_ids)))]
        return Session(number, f"user-{user}", query_id), rng

    def run(
        self,
        target: Target,
        collection: str,
        sessions: int,
        threads: int = 1,
        start: int = 0,
        stop: Callable[[], bool] | None = None,
    ) -> SimulationReport:
        """Play sessions ``start .. start + sessions - 1`` against ``collection``, ``threads`` at a
        time; ``stop()`` returning true ends the run early. Errors are counted by code, not raised
        (a connection that fails counts as ``unreachable``)."""
        report = SimulationReport()
        numbers = iter(range(start, start + sessions))

        def worker() -> None:
            while stop is None or not stop():
                with self._lock:
                    number = next(numbers, None)
                if number is None:
                    return
                self._one(target, collection, number, report)

        if threads == 1:
            worker()
        else:
            with ThreadPoolExecutor(threads, thread_name_prefix="simulated-user") as pool:
                for future in [pool.submit(worker) for _ in range(threads)]:
                    future.result()
        return report

    def _one(self, target: Target, collection: str, number: int, report: SimulationReport) -> None:
        session = self.session(number)
        try:
            result = target.search(collection, self.queries[session.query_id], k=self.k, key=session.key)
            clicks = self.play(number, [hit.id for hit in result.hits])
            for click in clicks:
                event = {"request_id": result.request_id, "id": click.id, "event": "click"}
                target.feedback(collection, event)
                if click.converted:
                    target.feedback(collection, {**event, "event": "convert"})
        except EmbedswitchError as exc:
            with self._lock:
                report.fail(exc.code, exc.status >= 500)
            return
        except httpx.TransportError:
            with self._lock:
                report.fail("unreachable", False)
            return
        with self._lock:
            report.add(result.version, clicks)
