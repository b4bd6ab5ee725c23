"""What the engine answers: the same models serve the Python API, the HTTP API and the client."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _is_none(value: object) -> bool:
    return value is None


class Hit(_Out):
    id: str
    score: float
    fields: dict[str, Any] = {}
    # in an interleaved answer: the version that contributed this hit (absent from other answers)
    version: str | None = Field(default=None, exclude_if=_is_none)


class SearchResult(_Out):
    version: str
    applied_seq: int
    request_id: str
    hits: list[Hit]
    # an interleaved answer names both versions (``version`` is then the first) and each hit its own;
    # absent from other answers, so they keep their shape
    interleaved: list[str] | None = Field(default=None, exclude_if=_is_none)


class RecommendResult(_Out):
    version: str
    applied_seq: int
    request_id: str
    hits: list[Hit]
    fallback: str | None = None  # "popular" when the user had no vector and the fallback answered


class Progress(_Out):
    done: int
    total: int
    rate: float  # per second over the recent past: records, or iterations while training
    eta_s: float | None
    phase: Literal["training", "loading", "backfill"] = "backfill"


class IndexUsage(_Out):
    """One record kind's index in a version: what serves it and what it takes."""

    type: str  # "exact", "hnsw", "usearch" or "pgvector" (an "auto" index reports what it is now);
    # "bm25" for a bm25 version, the dense index's type and "+bm25" for a hybrid ("exact+bm25")
    precision: str  # "f32", or "f16"/"i8" for a reduced-precision index; "text" for bm25 alone
    vectors: int
    memory_bytes: int  # allocated for the vectors, the search structure and the id bookkeeping
    disk_bytes: int  # its last checkpoint (a pgvector index: its table in the database)


class VersionInfo(_Out):
    name: str
    model: dict[str, Any]
    model_label: str
    fingerprint: str
    dim: int
    index: dict[str, Any]
    source: str = "model"  # or "vectors" for a version loaded from precomputed vectors
    state: str
    created_seq: int
    applied_seq: int
    lag: int
    records: int
    records_by_kind: dict[str, int]
    weight: int
    progress: Progress | None = None
    error: str | None = None  # the applier's or backfill's last error while it retries
    quarantined: int = 0  # records its model rejected, not skipped: a building version waits for them
    quarantine_skipped: int = 0  # quarantined records skipped on purpose
    memory_bytes: int = 0  # every index of the version
    disk_bytes: int = 0  # their checkpoints and the version's other files
    indexes: dict[str, IndexUsage] = {}  # by record kind


class CollectionInfo(_Out):
    name: str
    head_seq: int
    records: int
    records_by_kind: dict[str, int]
    versions: list[VersionInfo]
    traffic: dict[str, int]


class WriteAck(_Out):
    count: int
    changed: int
    seq: int


class VectorAck(_Out):
    count: int
    written: int  # the rest were older than what the version already holds


class DeleteAck(_Out):
    seq: int


class RecordOut(_Out):
    id: str
    kind: str
    text: str
    fields: dict[str, Any]
    seq: int


class RecordsPageOut(_Out):
    records: list[RecordOut]
    cursor: str | None  # pass it back for the next page; None on the last one


class RecordsOut(_Out):
    records: list[RecordOut]
    missing: list[str]  # the ids asked for that no record has


class DeletedAck(_Out):
    count: int  # records deleted
    seq: int  # the collection's head after the delete: search with min_seq to see it applied
    more: bool = False  # delete by filter: matching records remain, call again


class BatchSearchResult(_Out):
    results: list[SearchResult]  # one per search, in the order asked


class TrafficEntry(_Out):
    id: int
    weights: dict[str, int]
    reason: str
    created_at: float


class ShadowSetting(_Out):
    version: str  # the candidate that a share of live requests is mirrored to
    percent: float


class InterleaveSetting(_Out):
    versions: list[str]  # two ready versions; the first is the one the report compares against
    percent: float


class TrafficInfo(_Out):
    weights: dict[str, int]
    history: list[TrafficEntry]
    shadow: ShadowSetting | None = None
    interleave: InterleaveSetting | None = None


class QuarantinedRecord(_Out):
    """A record a version's model rejected: its text as of ``seq`` has no vector there."""

    kind: str
    id: str
    seq: int
    error: str  # the model's message (status and URL for a remote one, never its answer's body)
    at: float
    skipped: bool


class QuarantineInfo(_Out):
    version: str
    open: int  # not skipped: a building version becomes ready only without these
    skipped: int
    records: list[QuarantinedRecord]


class QuarantineAck(_Out):
    version: str
    changed: int  # retry: records embedded and written now; skip: records newly skipped
    rejected: int = 0  # retry: records the model rejected again
    pending: int = 0  # retry: records written or deleted since, resolved once the stream applies that
    open: int
    skipped: int


class EventOut(_Out):
    id: int
    version: str | None
    event: str
    detail: dict[str, Any]
    at: float


# -- experiments (embedswitch/experiment.py) -------------------------------------------------------

Outcome = Literal["better", "worse", "not_significant"]


class ArmStats(_Out):
    """One version's routed, non-interleaved requests in the current experiment, with 95% CIs."""

    version: str
    requests: int
    clicks: int  # requests with at least one click
    conversions: int  # requests with at least one conversion
    ctr: float
    ctr_ci: tuple[float, float]  # Wilson score interval
    conversion_rate: float
    conversion_ci: tuple[float, float]  # Wilson score interval
    mrr: float  # mean over requests of 1/rank of the first clicked hit (0 without a click)
    mrr_ci: tuple[float, float]  # normal approximation


class Comparison(_Out):
    """A candidate's CTR against the control's: two-proportion z-test at the 5% level."""

    candidate: str
    control: str
    metric: Literal["ctr"] = "ctr"
    difference: float  # candidate CTR minus control CTR
    ci: tuple[float, float]  # 95% interval of the difference
    p_value: float
    outcome: Outcome
    verdict: str  # "v2 better", "v2 worse", or "not significant yet, about N more requests needed"
    more_requests_needed: int | None  # at the current split, for 80% power at the observed effect


class AbReport(_Out):
    control: str | None
    arms: dict[str, ArmStats]
    comparisons: dict[str, Comparison]  # by candidate


class InterleavingReport(_Out):
    """Team-draft interleaving of two versions: per impression, the version whose hits got more
    clicks wins; equal credit (at least one click) is a tie; impressions without clicks are neither."""

    versions: tuple[str, str]
    impressions: int
    wins: dict[str, int]
    ties: int
    p_value: float  # two-sided sign test of wins against losses
    outcome: Outcome  # of versions[1] against versions[0]
    verdict: str
    more_impressions_needed: int | None = None  # for 80% power at the observed win rate


class LatencyMs(_Out):
    p50: float
    p99: float


class ShadowReport(_Out):
    """Requests mirrored to a candidate in the current experiment (the user got the live answer)."""

    candidate: str
    mirrored: int
    errors: int
    latency_ms: LatencyMs  # the candidate's, measured in the background mirror worker
    live_latency_ms: LatencyMs  # the live answers of the same requests
    overlap_at_10: float  # mean Jaccard overlap of the top-10 ids with the live answer's
    last_error: str | None = None


class ExperimentReport(_Out):
    collection: str
    experiment: int  # 1 for the first experiment, +1 at every reset
    started_at: float
    ab: AbReport
    interleaving: InterleavingReport | None
    shadow: list[ShadowReport]


class FeedbackAck(_Out):
    request_id: str
    counted: bool  # False when the same (request_id, id, event) was already counted
    version: str  # the version credited: the answering one, or an interleaved hit's contributor
    rank: int  # the hit's 1-based position in that response


class VersionScores(_Out):
    """One version's scores on judged queries. The metrics are extra keys named by their cutoff
    (``ndcg@10``, ``recall@100``, ``mrr@10``): read them as ``scores["ndcg@10"]``."""

    model_config = ConfigDict(extra="allow")

    latency_ms: LatencyMs  # of each query through the version's serving search
    queries: int
    state: str  # "building": the scores cover only the records the version holds so far
    model_label: str
    records: int  # vectors the version held of the evaluated kind when the evaluation started
    warning: str | None = None
    per_query: dict[str, dict[str, float]] | None = None  # with "per_query": true

    def __getitem__(self, key: str) -> Any:
        extra = self.model_extra or {}
        return extra[key] if key in extra else getattr(self, key)


class EvaluateResult(_Out):
    k: int
    kind: str
    versions: dict[str, VersionScores]


class Distribution(_Out):
    n: int
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None


class SampleScores(_Out):
    """One version's answers to the sampled queries, restricted to the shared records."""

    state: str
    model_label: str
    latency_ms: LatencyMs  # query embedding + unrestricted index search, as /search does it
    top1: Distribution  # the best hit's score per query
    topk: Distribution  # every score of every query's top k, pooled
    ndcg: float | None = None  # nDCG@k on the judged queries of the sample, if any


class Overlap(_Out):
    k: int
    jaccard: float  # mean over the sampled queries of |A ∩ B| / |A ∪ B| of the top-k ids
    rbo: float  # mean extrapolated rank-biased overlap of the top-k lists
    p: float  # RBO persistence


class Coverage(_Out):
    shared: int  # records both versions had embedded when the comparison started
    records: int  # live records of the sampled queries' kinds
    ratio: float  # shared / records
    candidate: int
    against: int


class SampleInfo(_Out):
    requested: int
    logged: int  # queries in the log (within retention) to sample from
    used: int
    skipped: int  # e.g. a "like" query whose record the candidate has no vector for yet
    seed: int


class BackfillSampleInfo(_Out):
    requested: int
    embedded: int  # records written into the candidate (the rest it already had, or vanished)


class CandidateEvaluation(_Out):
    collection: str
    candidate: str
    against: str
    sample: SampleInfo
    coverage: Coverage
    overlap: Overlap
    versions: dict[str, SampleScores]
    judged: int  # sampled queries with judgments on the shared records (the nDCG subset)
    backfill_sample: BackfillSampleInfo | None = None
    warnings: list[str] = []


# -- gated rollouts (embedswitch/rollouts.py) ------------------------------------------------------

RolloutStatus = Literal["running", "completed", "rolled_back", "stopped"]


class GateCheck(_Out):
    """One gate's verdict at the end of a step."""

    gate: Literal["error_rate", "p99_ratio", "offline", "ab", "interleaving"]
    passed: bool
    value: float | str | None  # what was measured (an outcome for the experiment gates)
    limit: float | str | None
    detail: str


class RolloutTransition(_Out):
    at: float
    outcome: Literal["started", "advanced", "completed", "rolled_back", "stopped", "resumed"]
    step: int  # percent of traffic on the candidate after the transition
    weights: dict[str, int]
    reason: str
    gates: list[GateCheck] = []


class RolloutWindow(_Out):
    """Routed requests per version since the current step began (in this process)."""

    since: float
    requests: dict[str, int]
    errors: dict[str, int]


class RolloutInfo(_Out):
    id: int
    collection: str
    live: str  # the version that had all traffic when the rollout started
    to: str
    steps: list[int]
    min_requests: int
    step_interval_s: float
    gates: dict[str, Any]
    status: RolloutStatus
    step: int  # percent on the candidate now (0 before the first step)
    weights: dict[str, int]
    reason: str  # why it is where it is: the last transition, or what the current step waits for
    created_at: float
    updated_at: float
    transitions: list[RolloutTransition]
    window: RolloutWindow | None = None  # while running
