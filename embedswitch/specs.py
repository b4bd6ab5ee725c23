"""Validated inputs shared by the engine, the HTTP API and the client, with their documented limits."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ._errors import InvalidRequest
from .filters import RecordFilter
from .index.registry import check_placement, shares_across_processes
from .index.specs import AutoSpec, IndexSpec, index_spec, parse_index_spec
from .models.specs import AlsSpec, LexicalSpec, ModelSpec, parse_model_spec

T = TypeVar("T", bound=BaseModel)

MAX_TEXT_CHARS = 32_768
MAX_ID_CHARS = 256
MAX_FIELDS_BYTES = 65_536
MAX_BATCH = 10_000
MAX_K = 1_000
MAX_BATCH_SEARCH = 256
"""Most searches in one batch request."""
MAX_PAGE = 1_000
"""Most records one page of the records API (list, batch get, batch delete) takes or returns."""
MAX_SEARCH_EF = 4_096
MAX_SEQ = 2**63 - 1
"""The largest seq (and rollout id) a store holds: SQLite's largest integer."""
MAX_WEIGHT = 1e6
MAX_GRADE = 1_000_000

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KIND_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Kind = Annotated[str, StringConstraints(pattern=KIND_PATTERN)]
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def check_text(text: str) -> str:
    """Non-blank and at most MAX_TEXT_CHARS characters."""
    if not text.strip():
        raise ValueError("text is empty or whitespace only; send the text to embed")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(
            f"text has {len(text)} characters, over the limit of {MAX_TEXT_CHARS}; split or truncate it"
        )
    return text


MAX_DIM = 65_536

Vector = Annotated[list[float], Field(min_length=1, max_length=MAX_DIM)]


class RecordIn(_Strict):
    """One record to upsert. ``(kind, id)`` identifies it within a collection.

    ``text`` is what text models embed; ``vector`` is the record's own vector, stored with it in
    the change log, for versions whose model is ``"none"``. A record has one or both."""

    id: RecordId
    text: str | None = None
    kind: Kind = "doc"
    fields: dict[str, Any] = Field(default_factory=dict)
    vector: Vector | None = None

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("id is blank; give every record a non-empty id")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)

    @model_validator(mode="after")
    def _text_or_vector(self) -> RecordIn:
        if self.text is None and self.vector is None:
            raise ValueError('give the record a "text" to embed or its own "vector" (or both)')
        return self

    @field_validator("fields")
    @classmethod
    def _fields_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value, separators=(",", ":"), allow_nan=False))
        except ValueError:
            raise ValueError(
                "fields hold NaN or an infinite number, which JSON has no way to keep; send null, "
                "a string or a finite number"
            ) from None
        if size > MAX_FIELDS_BYTES:
            raise ValueError(f"fields take {size} bytes as JSON, over the limit of {MAX_FIELDS_BYTES}")
        return value


class RecordBatch(_Strict):
    records: list[RecordIn] = Field(min_length=1, max_length=MAX_BATCH)


class VersionSpec(_Strict):
    """A version: a name, the model that embeds for it and the index type that stores it.

    ``source="vectors"`` is the batch deployment mode: document vectors made offline are loaded with
    ``put_vectors``; ``model`` then embeds queries and streamed records, and, once the load is
    committed, any snapshot record that got no vector.
    """

    name: Name
    model: ModelSpec
    index: IndexSpec = Field(default_factory=AutoSpec)
    source: Literal["model", "vectors"] = "model"
    executor: Literal["auto", "threads", "process", "ray"] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Where this version's backfill embeds (the server's `backfill_executor` when "
        "null): `threads`, `process`, `ray` or `auto`",
    )

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> ModelSpec:
        return parse_model_spec(value)

    _index = field_validator("index", mode="before")(parse_index_spec)

    @model_validator(mode="after")
    def _als_loads_vectors(self) -> VersionSpec:
        if isinstance(self.model, AlsSpec) and self.source != "vectors":
            raise ValueError(
                "an als model embeds no text: train it (POST /v1/collections/{c}/train) or create it "
                'with "source": "vectors" and load its item factors'
            )
        if isinstance(self.model, LexicalSpec) and self.source != "model":
            raise ValueError(
                f"a {self.model.type} version indexes the records' text, so its records can't be "
                'loaded as vectors; leave "source" out (or set it to "model")'
            )
        return self


def stored_version_spec(raw: dict[str, Any]) -> VersionSpec:
    """A spec as a store holds it (``VersionSpec`` as JSON), also as an earlier release wrote it."""
    return VersionSpec.model_validate({**raw, "index": parse_index_spec(raw.get("index", {}), lenient=True)})


class TrainRequest(_Strict):
    """Train a collaborative model on the interactions so far; deploy it as ``version`` (building)."""

    version: Name
    model: AlsSpec = Field(default_factory=AlsSpec)
    index: IndexSpec = Field(default_factory=AutoSpec)

    _index = field_validator("index", mode="before")(parse_index_spec)

    @model_validator(mode="after")
    def _not_trained_yet(self) -> TrainRequest:
        if self.model.trained_seq is not None:
            raise ValueError("model.trained_seq is set by training itself; leave it out")
        return self


RoutingKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class Like(_Strict):
    """A stored record whose vector (in the pinned version) is the query."""

    kind: Kind
    id: RecordId


class RecordRef(_Strict):
    id: RecordId
    kind: Kind = "doc"


class QuarantineRequest(_Strict):
    """Which quarantined records a retry or skip acts on: ``records`` (``{"id", "kind"?}`` each), or
    every one of the version's when it is absent."""

    records: list[RecordRef] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)

    def keys(self) -> list[tuple[str, str]] | None:
        """The records as ``(kind, id)``, or None for all."""
        return None if self.records is None else [(r.kind, r.id) for r in self.records]


FieldName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Fields = Annotated[list[FieldName], Field(max_length=256)]


class SearchRequest(_Strict):
    """Exactly one of ``text`` (embedded by the pinned version's model), ``like`` or ``vector`` (a
    query vector of the pinned version's dimension).

    ``filter`` restricts the hits to records whose fields match it, before ranking (see
    ``filters/grammar.py``); ``fields`` names the fields each hit carries (absent: all, ``[]``:
    none); ``score_threshold`` drops hits scoring below it; ``ef`` widens a graph index's search
    for this request; ``exact`` scores every candidate, whatever the index."""

    text: str | None = None
    like: Like | None = None
    vector: Vector | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    kind: Kind = "doc"
    version: Name | None = None
    key: RoutingKey | None = None
    min_seq: Annotated[int, Field(ge=0, le=MAX_SEQ)] | None = None
    filter: RecordFilter | None = None
    fields: Fields | None = None
    score_threshold: Annotated[float, Field(allow_inf_nan=False)] | None = None
    ef: Annotated[int, Field(ge=1, le=MAX_SEARCH_EF)] | None = None
    exact: bool = False

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if sum(query is not None for query in (self.text, self.like, self.vector)) != 1:
            raise ValueError(
                'give exactly one of "text", "like": {"kind": ..., "id": ...} or "vector": [...]'
            )
        return self


class InteractionIn(_Strict):
    """A user interacted with an item (which must exist as a record of kind ``item``)."""

    user: RecordId
    item: RecordId
    weight: Annotated[float, Field(gt=0, le=MAX_WEIGHT, allow_inf_nan=False)] = 1.0
    ts: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None  # seconds; default: now


class InteractionBatch(_Strict):
    interactions: list[InteractionIn] = Field(min_length=1, max_length=MAX_BATCH)


class RecommendRequest(_Strict):
    """Items for a ``user`` (their vector in the pinned version) or like an ``item``."""

    user: RecordId | None = None
    item: RecordId | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    exclude_seen: bool = True
    key: RoutingKey | None = None
    version: Name | None = None
    fallback: Literal["popular"] | None = None
    filter: RecordFilter | None = None
    fields: Fields | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> RecommendRequest:
        if (self.user is None) == (self.item is None):
            raise ValueError('give exactly one of "user" or "item"')
        return self


class BatchSearchRequest(_Strict):
    """Several searches in one request. Searches with the same ``version`` and ``key`` (or none)
    are pinned to one version together, their texts embedded in one model batch."""

    searches: list[SearchRequest] = Field(min_length=1, max_length=MAX_BATCH_SEARCH)


class RecordsPage(_Strict):
    """A page of a collection's records of ``kind``, in id order: from the start, or after the
    ``cursor`` the previous page returned; ``filter`` and ``fields`` as in a search."""

    kind: Kind = "doc"
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    filter: RecordFilter | None = None
    fields: Fields | None = None


class RecordIds(_Strict):
    """Records of ``kind`` by id (a batch get or a batch delete)."""

    ids: list[RecordId] = Field(min_length=1, max_length=MAX_PAGE)
    kind: Kind = "doc"


class DeleteWhere(_Strict):
    """Delete every record of ``kind`` whose fields match ``filter`` (at most ``MAX_BATCH`` at once)."""

    filter: RecordFilter
    kind: Kind = "doc"


class VectorRow(_Strict):
    id: RecordId
    kind: Kind = "doc"
    vector: Vector


class VectorBatch(_Strict):
    vectors: list[VectorRow] = Field(min_length=1, max_length=MAX_BATCH)


class VectorIds(_Strict):
    """The records an array of vectors is for (``Engine.put_vectors`` with an array): any number."""

    ids: list[RecordId] = Field(min_length=1)
    kind: Kind = "doc"


class CollectionSpec(_Strict):
    name: Name
    version: VersionSpec


Percent = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]


class ShadowSpec(_Strict):
    """Mirror ``percent`` of routed requests to ``version`` (building or ready) in the background."""

    version: Name
    percent: Percent


class InterleaveSpec(_Strict):
    """Answer ``percent`` of routed searches with a team-draft interleaving of two ready versions."""

    versions: list[Name] = Field(min_length=2, max_length=2)
    percent: Percent

    @field_validator("versions")
    @classmethod
    def _two_distinct(cls, value: list[str]) -> list[str]:
        if value[0] == value[1]:
            raise ValueError('interleave two different versions, e.g. ["v1", "v2"]')
        return value


class TrafficSpec(_Strict):
    """Any of: new ``weights``; ``shadow`` / ``interleave`` settings (``null`` turns one off).
    What a request leaves out stays as it is."""

    weights: dict[Name, Annotated[int, Field(ge=0, le=1_000_000)]] | None = Field(None, min_length=1)
    shadow: ShadowSpec | None = None
    interleave: InterleaveSpec | None = None

    @model_validator(mode="after")
    def _something(self) -> TrafficSpec:
        if not self.model_fields_set:
            raise ValueError('"weights" is required, or "shadow" or "interleave" (or several)')
        if "weights" in self.model_fields_set and self.weights is None:
            raise ValueError('"weights" must be an object such as {"v1": 90}; leave it out to keep them')
        return self


MAX_FEEDBACK_VALUE = 1e12


class FeedbackIn(_Strict):
    """A user clicked (or converted on) hit ``id`` of the response ``request_id``."""

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    id: RecordId
    event: Literal["click", "convert"]
    value: Annotated[float, Field(ge=0, le=MAX_FEEDBACK_VALUE, allow_inf_nan=False)] | None = None


MAX_EVAL_QUERIES = 10_000
MAX_EVAL_VERSIONS = 16
MAX_BACKFILL_SAMPLE = 100_000

QueryTexts = dict[RecordId, str]
Judgments = dict[RecordId, dict[RecordId, Annotated[int, Field(ge=-MAX_GRADE, le=MAX_GRADE)]]]


def check_query_texts(queries: QueryTexts | None) -> QueryTexts | None:
    """Every query text passes ``check_text``; the message names the first bad query id."""
    for qid, text in (queries or {}).items():
        try:
            check_text(text)
        except ValueError as exc:
            raise ValueError(f"query {qid!r}: {exc}") from None
    return queries


def check_judgments(queries: QueryTexts | None, qrels: Judgments | None) -> None:
    """Both or neither; every judged query has a text."""
    if (queries is None) != (qrels is None):
        raise ValueError('give both "queries" ({qid: text}) and "qrels" ({qid: {doc_id: grade}}), or neither')
    missing = sorted(set(qrels or {}) - set(queries or {}))
    if missing:
        raise ValueError(
            f'{len(missing)} judged queries have no text in "queries" (e.g. {", ".join(missing[:3])}); '
            "send the text of every query in qrels"
        )


class EvaluateRequest(_Strict):
    """Judged queries run through each version's serving search. Only the queries of ``qrels`` are
    run; nDCG and MRR are cut at ``k``, recall at 100. ``per_query`` adds every query's scores."""

    versions: list[Name] = Field(min_length=1, max_length=MAX_EVAL_VERSIONS)
    queries: QueryTexts = Field(min_length=1, max_length=MAX_EVAL_QUERIES)
    qrels: Judgments = Field(min_length=1, max_length=MAX_EVAL_QUERIES)
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    kind: Kind = "doc"
    per_query: bool = False

    @field_validator("versions")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a version is named twice; name each version once")
        return value

    _texts = field_validator("queries")(check_query_texts)

    @model_validator(mode="after")
    def _judged(self) -> EvaluateRequest:
        check_judgments(self.queries, self.qrels)
        return self


class CandidateEvaluateRequest(_Strict):
    """Compare a (possibly building) version with the live one on ``sample`` logged queries, over
    the records both have embedded. ``backfill_sample`` records are embedded into the candidate
    first; ``queries`` + ``qrels`` are judgments matched to logged queries by their exact text."""

    sample: Annotated[int, Field(ge=1, le=MAX_EVAL_QUERIES)]
    against: Name | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    backfill_sample: Annotated[int, Field(ge=0, le=MAX_BACKFILL_SAMPLE)] = 0
    seed: Annotated[int, Field(ge=0, le=MAX_SEQ)] | None = None
    queries: QueryTexts | None = Field(None, max_length=MAX_EVAL_QUERIES)
    qrels: Judgments | None = Field(None, max_length=MAX_EVAL_QUERIES)

    _texts = field_validator("queries")(check_query_texts)

    @model_validator(mode="after")
    def _judged(self) -> CandidateEvaluateRequest:
        check_judgments(self.queries, self.qrels)
        return self


MAX_ROLLOUT_STEPS = 20
OFFLINE_METRICS = ("ndcg@10", "recall@100", "mrr@10")


class OfflineGate(_Strict):
    """Before the first step, the candidate's ``metric`` on judged queries must be at least ``min``.

    The judgments are ``queries`` + ``qrels`` in the request, or ``beir``: a BEIR directory
    (``queries.jsonl``, ``qrels/test.tsv``) on the server's machine, read when the gate runs."""

    metric: Literal["ndcg@10", "recall@100", "mrr@10"] = "ndcg@10"
    min: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    queries: QueryTexts | None = Field(None, max_length=MAX_EVAL_QUERIES)
    qrels: Judgments | None = Field(None, max_length=MAX_EVAL_QUERIES)
    beir: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None

    _texts = field_validator("queries")(check_query_texts)

    @model_validator(mode="after")
    def _one_source(self) -> OfflineGate:
        check_judgments(self.queries, self.qrels)
        if (self.qrels is None) == (self.beir is None):
            raise ValueError('give the judged queries as "queries" + "qrels", or as "beir": a directory')
        return self


class RolloutGates(_Strict):
    """What must hold at every step before the next one. ``max_error_rate``: share of the
    candidate's routed requests that failed with a server error; ``max_p99_ratio``: its p99
    latency over the live version's, same window; ``experiment``: the A/B or interleaving outcome
    of the current experiment must not be "worse". ``null`` turns a gate off."""

    max_error_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = 0.01
    max_p99_ratio: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] | None = None
    offline: OfflineGate | None = None
    experiment: Literal["ab", "interleaving", "none"] = "none"


class RolloutSpec(_Strict):
    """Move traffic from the live version to ``to`` through ``steps`` (percent on ``to``, rising,
    ending at 100), each held until ``to`` has answered ``min_requests`` routed requests in it (and
    at least ``step_interval_s`` seconds) and every gate passes; a failing gate rolls back."""

    to: Name
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [1, 10, 50, 100], min_length=1, max_length=MAX_ROLLOUT_STEPS
    )
    min_requests: Annotated[int, Field(ge=1, le=100_000_000)] = 200
    gates: RolloutGates = Field(default_factory=RolloutGates)
    step_interval_s: Annotated[float, Field(ge=0, le=7 * 86_400, allow_inf_nan=False)] = 0.0

    @field_validator("steps")
    @classmethod
    def _rising_to_100(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(value, value[1:], strict=False)) or value[-1] != 100:
            raise ValueError(f"steps {value} must rise strictly and end at 100, e.g. [1, 10, 50, 100]")
        return value


def describe_errors(exc: ValidationError) -> str:
    """One readable line per problem (at most five), each naming the field."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse(cls: type[T], data: Any) -> T:
    """``data`` validated as ``cls``; an ``InvalidRequest`` naming each bad field otherwise."""
    if isinstance(data, cls):
        return data
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc)) from None


def place_index(spec: VersionSpec, shared: bool) -> VersionSpec:
    """``spec`` with its index where this deployment keeps indexes: with a shared store (several
    processes), in the store's database (``pgvector``; ``auto`` becomes it) or on a ``qdrant``
    server, never in one process's memory (a lexical version's BM25 index goes to the store's
    database too, ``index/pgbm25.py``); embedded, as given, but never ``pgvector`` (no database
    to keep it in)."""
    kind = spec.index.type
    check_placement(spec.index, has_database=shared)
    if not shared or shares_across_processes(spec.index):
        return spec
    if kind != "auto":
        raise InvalidRequest(
            f"index type {kind!r} keeps vectors in one process, but this server shares a PostgreSQL store "
            'with other processes; use "index": {"type": "pgvector"} (or leave the type out)',
            index=kind,
        )
    params = spec.index.model_dump(include={"m", "ef_construction", "ef_search"})
    return spec.model_copy(update={"index": index_spec({"type": "pgvector", **params})})


class NameArg(BaseModel):
    """A collection name given alone (a path parameter, or a Python argument)."""

    model_config = ConfigDict(strict=True)
    name: Name


class KindArg(BaseModel):
    """A record kind given alone."""

    model_config = ConfigDict(strict=True)
    kind: Kind
