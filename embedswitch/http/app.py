"""Routes of the HTTP API (OpenAPI at ``/docs``). Handlers are sync and run in the server's threadpool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

from fastapi import FastAPI, Query, Response
from fastapi.responses import JSONResponse

from .. import __version__
from ..engine import Engine
from ..results import (
    CandidateEvaluation,
    CollectionInfo,
    DeleteAck,
    EvaluateResult,
    EventOut,
    ExperimentReport,
    FeedbackAck,
    RecommendResult,
    RecordOut,
    RolloutInfo,
    SearchResult,
    TrafficInfo,
    VectorAck,
    VersionInfo,
    WriteAck,
)
from ..specs import (
    CandidateEvaluateRequest,
    CollectionSpec,
    EvaluateRequest,
    FeedbackIn,
    InteractionIn,
    RecommendRequest,
    RecordBatch,
    RolloutSpec,
    SearchRequest,
    TrafficSpec,
    TrainRequest,
    VectorBatch,
    VersionSpec,
)
from . import errors

T = TypeVar("T")
KIND_QUERY = Query("doc", description="record kind; ids are unique per (kind, id)")


def create_app(engine: Engine, close_engine: bool = True) -> FastAPI:
    """A FastAPI app serving ``engine``; it closes the engine on shutdown unless told not to."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_engine:
            engine.close()

    app = FastAPI(title="embedswitch", version=__version__, lifespan=lifespan)
    app.state.engine = engine
    errors.install(app)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        problems = [
            f"{c.name}/{v.name}: {v.problem}"
            for c in engine.list_collection_runtimes()
            for v in c.versions.values()
            if v.problem
        ]
        status = 503 if problems else 200
        return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        return Response(engine.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/v1/collections", status_code=201, tags=["collections"])
    def create_collection(body: CollectionSpec) -> CollectionInfo:
        return engine.create_collection(body.name, body.version)

    @app.get("/v1/collections", tags=["collections"])
    def list_collections() -> list[CollectionInfo]:
        return engine.list_collections()

    @app.get("/v1/collections/{c}", tags=["collections"])
    def describe(c: str) -> CollectionInfo:
        return engine.describe(c)

    @app.delete("/v1/collections/{c}", tags=["collections"])
    def delete_collection(c: str) -> dict[str, str]:
        engine.delete_collection(c)
        return {"deleted": c}

    @app.put("/v1/collections/{c}/records", tags=["records"])
    def upsert(c: str, body: RecordBatch) -> WriteAck:
        return engine.upsert(c, body.records)

    @app.get("/v1/collections/{c}/records/{id:path}", tags=["records"])
    def get_record(c: str, id: str, kind: str = KIND_QUERY) -> RecordOut:
        return engine.get_record(c, id, kind)

    @app.delete("/v1/collections/{c}/records/{id:path}", tags=["records"])
    def delete_record(c: str, id: str, kind: str = KIND_QUERY) -> DeleteAck:
        return engine.delete(c, id, kind)

    @app.post("/v1/collections/{c}/search", tags=["search"])
    def search(c: str, body: SearchRequest) -> SearchResult:
        like = body.like.model_dump() if body.like is not None else None
        return engine.search(c, body.text, body.k, body.kind, body.version, body.key, body.min_seq, like)

    @app.post("/v1/collections/{c}/recommend", tags=["search"])
    def recommend(c: str, body: RecommendRequest) -> RecommendResult:
        return engine.recommend(
            c, body.user, body.item, body.k, body.exclude_seen, body.key, body.version, body.fallback
        )

    @app.post("/v1/collections/{c}/interactions", tags=["records"])
    def interactions(c: str, body: list[InteractionIn]) -> WriteAck:
        return engine.add_interactions(c, body)

    @app.post("/v1/collections/{c}/versions", status_code=202, tags=["versions"])
    def add_version(c: str, body: VersionSpec) -> VersionInfo:
        return engine.add_version(c, body)

    @app.get("/v1/collections/{c}/versions", tags=["versions"])
    def list_versions(c: str) -> list[VersionInfo]:
        return engine.describe(c).versions

    @app.get("/v1/collections/{c}/versions/{v}", tags=["versions"])
    def describe_version(c: str, v: str) -> VersionInfo:
        return engine.describe_version(c, v)

    @app.post("/v1/collections/{c}/train", status_code=202, tags=["versions"])
    def train(c: str, body: TrainRequest) -> VersionInfo:
        return engine.train(c, body)

    @app.put("/v1/collections/{c}/versions/{v}/vectors", tags=["versions"])
    def put_vectors(c: str, v: str, body: VectorBatch) -> VectorAck:
        return engine.put_vectors(c, v, body.vectors)

    @app.post("/v1/collections/{c}/versions/{v}/vectors/commit", tags=["versions"])
    def commit_vectors(c: str, v: str) -> VersionInfo:
        return engine.commit_vectors(c, v)

    @app.post("/v1/collections/{c}/versions/{v}/promote", tags=["traffic"])
    def promote(c: str, v: str) -> TrafficInfo:
        return engine.promote(c, v)

    @app.delete("/v1/collections/{c}/versions/{v}", tags=["versions"])
    def retire(c: str, v: str) -> dict[str, str]:
        engine.retire(c, v)
        return {"retired": v}

    @app.get("/v1/collections/{c}/traffic", tags=["traffic"])
    def traffic(c: str) -> TrafficInfo:
        return engine.traffic(c)

    @app.put("/v1/collections/{c}/traffic", tags=["traffic"])
    def set_traffic(c: str, body: TrafficSpec) -> TrafficInfo:
        given = body.model_fields_set  # an explicit null turns a setting off; left out: unchanged
        shadow = _setting(body.shadow, "shadow" in given)
        interleave = _setting(body.interleave, "interleave" in given)
        return engine.set_traffic(c, body.weights, shadow, interleave)

    @app.post("/v1/collections/{c}/feedback", tags=["experiments"])
    def feedback(c: str, body: FeedbackIn) -> FeedbackAck:
        return engine.feedback(c, body)

    @app.get("/v1/collections/{c}/experiment", tags=["experiments"])
    def experiment(c: str) -> ExperimentReport:
        return engine.experiment(c)

    @app.post("/v1/collections/{c}/experiment/reset", tags=["experiments"])
    def reset_experiment(c: str) -> ExperimentReport:
        return engine.reset_experiment(c)

    @app.post("/v1/collections/{c}/rollback", tags=["traffic"])
    def rollback(c: str) -> TrafficInfo:
        return engine.rollback(c)

    @app.get("/v1/collections/{c}/events", tags=["versions"])
    def events(c: str, version: str | None = None) -> list[EventOut]:
        return engine.events(c, version)

    @app.post("/v1/collections/{c}/rollouts", status_code=201, tags=["rollouts"])
    def start_rollout(c: str, body: RolloutSpec) -> RolloutInfo:
        return engine.start_rollout(c, body)

    @app.get("/v1/collections/{c}/rollouts", tags=["rollouts"])
    def list_rollouts(c: str) -> list[RolloutInfo]:
        return engine.list_rollouts(c)

    @app.get("/v1/collections/{c}/rollouts/{id}", tags=["rollouts"])
    def rollout(c: str, id: int) -> RolloutInfo:
        return engine.rollout(c, id)

    @app.post("/v1/collections/{c}/rollouts/{id}/stop", tags=["rollouts"])
    def stop_rollout(c: str, id: int) -> RolloutInfo:
        return engine.stop_rollout(c, id)

    @app.post("/v1/collections/{c}/evaluate", tags=["evaluation"])
    def evaluate(c: str, body: EvaluateRequest) -> EvaluateResult:
        return engine.evaluate(c, body)

    @app.post("/v1/collections/{c}/versions/{v}/evaluate", tags=["evaluation"])
    def evaluate_candidate(c: str, v: str, body: CandidateEvaluateRequest) -> CandidateEvaluation:
        return engine.evaluate_candidate(c, v, body)

    return app


def _setting(value: T | None, given: bool) -> T | Literal["off"] | None:
    """A traffic setting as the engine takes it: None if left out, "off" if sent as null."""
    if not given:
        return None
    return "off" if value is None else value
