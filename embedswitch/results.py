"""What the engine answers: the same models serve the Python API, the HTTP API and the client."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Hit(_Out):
    id: str
    score: float
    fields: dict[str, Any] = {}


class SearchResult(_Out):
    version: str
    applied_seq: int
    request_id: str
    hits: list[Hit]


class RecommendResult(_Out):
    version: str
    applied_seq: int
    request_id: str
    hits: list[Hit]
    fallback: str | None = None  # "popular" when the user had no vector and the fallback answered


class Progress(_Out):
    done: int
    total: int
    rate: float  # records per second over the recent past
    eta_s: float | None


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


class TrafficEntry(_Out):
    id: int
    weights: dict[str, int]
    reason: str
    created_at: float


class TrafficInfo(_Out):
    weights: dict[str, int]
    history: list[TrafficEntry]


class EventOut(_Out):
    id: int
    version: str | None
    event: str
    detail: dict[str, Any]
    at: float
