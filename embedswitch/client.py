"""``Client``: the HTTP API from Python, with the same method names and results as ``Engine``."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from ._errors import EmbedswitchError
from .results import (
    BatchSearchResult,
    CandidateEvaluation,
    CollectionInfo,
    DeleteAck,
    DeletedAck,
    EvaluateResult,
    EventOut,
    ExperimentReport,
    FeedbackAck,
    QuarantineAck,
    QuarantineInfo,
    RecommendResult,
    RecordOut,
    RecordsOut,
    RecordsPageOut,
    RolloutInfo,
    SearchResult,
    TrafficInfo,
    VectorAck,
    VersionInfo,
    WriteAck,
)

EVALUATE_TIMEOUT_S = 3600.0
"""How long ``evaluate`` and ``evaluate_candidate`` wait for their answer by default."""


def _error_classes() -> dict[str, type[EmbedswitchError]]:
    found: dict[str, type[EmbedswitchError]] = {}
    stack: list[type[EmbedswitchError]] = [EmbedswitchError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


_BY_CODE = _error_classes()


def _overloaded_wait(response: httpx.Response) -> float | None:
    """Seconds to wait before sending again a write the server refused by backpressure (503
    ``overloaded``: nothing was written), or None for any other answer."""
    if response.status_code != 503:
        return None
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return None
    if code != "overloaded":
        return None
    retry_after = response.headers.get("Retry-After", "")
    return float(retry_after) if retry_after.isdigit() else 1.0


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    context: dict[str, Any] = {}
    try:
        body = response.json()
        code, message = body["code"], body["message"]
        context = dict(body.get("context") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message = "http_error", f"HTTP {response.status_code}: {response.text[:200]}"
    cls = _BY_CODE.get(code, EmbedswitchError)
    error = EmbedswitchError.__new__(cls)
    EmbedswitchError.__init__(error, message, **context)
    error.status = response.status_code
    error.code = code
    raise error


class Client:
    """Talks to an embedswitch server. Errors come back as the same exception classes the engine raises."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        timeout_s: float = 60.0,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        overloaded_wait_s: float = 300.0,
    ) -> None:
        """``api_key`` (default: ``$EMBEDSWITCH_API_KEY``) goes as ``Authorization: Bearer``;
        ``headers`` are sent with every request too (for a proxy, say). A write the server refuses
        by backpressure (``Overloaded``: nothing was written) is sent again after its
        ``Retry-After``, for up to ``overloaded_wait_s`` in all (0: raised at once)."""
        self.url = url.rstrip("/")
        self.overloaded_wait_s = overloaded_wait_s
        sent = {"X-Requested-With": "embedswitch"}  # what a POST without a body needs (http/guards.py)
        api_key = api_key if api_key is not None else os.environ.get("EMBEDSWITCH_API_KEY")
        if api_key:
            sent["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, headers={**sent, **(headers or {})})

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        deadline = time.monotonic() + self.overloaded_wait_s
        while True:
            response = self._http.request(method, path, json=json, params=params)
            wait = _overloaded_wait(response)
            if wait is None or time.monotonic() + wait > deadline:
                break
            time.sleep(wait)
        _raise_for(response)
        return response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collections and records --------------------------------------------------------------

    def create_collection(self, name: str, version: dict[str, Any]) -> CollectionInfo:
        body = self._call("POST", "/v1/collections", {"name": name, "version": version})
        return CollectionInfo.model_validate(body)

    def list_collections(self) -> list[CollectionInfo]:
        return [CollectionInfo.model_validate(c) for c in self._call("GET", "/v1/collections")]

    def describe(self, name: str) -> CollectionInfo:
        return CollectionInfo.model_validate(self._call("GET", f"/v1/collections/{name}"))

    def delete_collection(self, name: str) -> None:
        self._call("DELETE", f"/v1/collections/{name}")

    def upsert(self, collection: str, records: list[dict[str, Any]]) -> WriteAck:
        body = self._call("PUT", f"/v1/collections/{collection}/records", {"records": records})
        return WriteAck.model_validate(body)

    def delete(self, collection: str, id: str, kind: str = "doc") -> DeleteAck:
        body = self._call(
            "DELETE", f"/v1/collections/{collection}/records/{quote(id, safe='')}", params={"kind": kind}
        )
        return DeleteAck.model_validate(body)

    def get_record(self, collection: str, id: str, kind: str = "doc") -> RecordOut:
        body = self._call(
            "GET", f"/v1/collections/{collection}/records/{quote(id, safe='')}", params={"kind": kind}
        )
        return RecordOut.model_validate(body)

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
        vector: Sequence[float] | None = None,
        filter: dict[str, Any] | None = None,
        fields: list[str] | None = None,
        score_threshold: float | None = None,
        ef: int | None = None,
        exact: bool | None = None,
    ) -> SearchResult:
        """One search; ``filter``, ``fields``, ``score_threshold``, ``ef`` and ``exact`` as in docs/api.md."""
        request: dict[str, Any] = {"text": text, "k": k, "kind": kind, "version": version, "key": key}
        request |= {
            "min_seq": min_seq,
            "filter": filter,
            "fields": fields,
            "score_threshold": score_threshold,
            "ef": ef,
        }
        request |= {"exact": exact}
        body: dict[str, Any] = {name: value for name, value in request.items() if value is not None}
        if like is not None:
            body["like"] = like
        if vector is not None:
            body["vector"] = list(vector)
        return SearchResult.model_validate(self._call("POST", f"/v1/collections/{collection}/search", body))

    def recommend(
        self,
        collection: str,
        user: str | None = None,
        item: str | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        key: str | None = None,
        version: str | None = None,
        fallback: str | None = None,
        filter: dict[str, Any] | None = None,
        fields: list[str] | None = None,
    ) -> RecommendResult:
        request: dict[str, Any] = {
            "user": user,
            "item": item,
            "k": k,
            "exclude_seen": exclude_seen,
            "key": key,
        }
        request |= {"version": version, "fallback": fallback, "filter": filter, "fields": fields}
        body = {name: value for name, value in request.items() if value is not None}
        path = f"/v1/collections/{collection}/recommend"
        return RecommendResult.model_validate(self._call("POST", path, body))

    def search_batch(self, collection: str, searches: list[dict[str, Any]]) -> BatchSearchResult:
        """Many searches (each a search body) in one request; see ``POST .../search/batch``."""
        body = self._call("POST", f"/v1/collections/{collection}/search/batch", {"searches": searches})
        return BatchSearchResult.model_validate(body)

    def scroll(self, collection: str, **page: Any) -> RecordsPageOut:
        """A page of records: ``kind``, ``limit``, ``cursor``, ``filter``, ``fields`` as in docs/api.md."""
        body = {name: value for name, value in page.items() if value is not None}
        return RecordsPageOut.model_validate(self._call("POST", f"/v1/collections/{collection}/scroll", body))

    def get_records(self, collection: str, ids: list[str], kind: str = "doc") -> RecordsOut:
        body = self._call("POST", f"/v1/collections/{collection}/get-records", {"ids": ids, "kind": kind})
        return RecordsOut.model_validate(body)

    def delete_records(self, collection: str, ids: list[str], kind: str = "doc") -> DeletedAck:
        body = self._call("POST", f"/v1/collections/{collection}/delete-records", {"ids": ids, "kind": kind})
        return DeletedAck.model_validate(body)

    def delete_where(self, collection: str, filter: dict[str, Any], kind: str = "doc") -> DeletedAck:
        body = {"filter": filter, "kind": kind}
        return DeletedAck.model_validate(
            self._call("POST", f"/v1/collections/{collection}/delete-where", body)
        )

    def add_interactions(self, collection: str, interactions: list[dict[str, Any]]) -> WriteAck:
        body = self._call("POST", f"/v1/collections/{collection}/interactions", interactions)
        return WriteAck.model_validate(body)

    # -- versions and traffic -----------------------------------------------------------------

    def add_version(self, collection: str, version: dict[str, Any]) -> VersionInfo:
        body = self._call("POST", f"/v1/collections/{collection}/versions", version)
        return VersionInfo.model_validate(body)

    def train(self, collection: str, request: dict[str, Any]) -> VersionInfo:
        body = self._call("POST", f"/v1/collections/{collection}/train", request)
        return VersionInfo.model_validate(body)

    def put_vectors(self, collection: str, version: str, vectors: list[dict[str, Any]]) -> VectorAck:
        path = f"/v1/collections/{collection}/versions/{version}/vectors"
        return VectorAck.model_validate(self._call("PUT", path, {"vectors": vectors}))

    def commit_vectors(self, collection: str, version: str) -> VersionInfo:
        path = f"/v1/collections/{collection}/versions/{version}/vectors/commit"
        return VersionInfo.model_validate(self._call("POST", path))

    def list_versions(self, collection: str) -> list[VersionInfo]:
        return [
            VersionInfo.model_validate(v) for v in self._call("GET", f"/v1/collections/{collection}/versions")
        ]

    def describe_version(self, collection: str, version: str) -> VersionInfo:
        return VersionInfo.model_validate(
            self._call("GET", f"/v1/collections/{collection}/versions/{version}")
        )

    def quarantine(self, collection: str, version: str) -> QuarantineInfo:
        path = f"/v1/collections/{collection}/versions/{version}/quarantine"
        return QuarantineInfo.model_validate(self._call("GET", path))

    def retry_quarantined(
        self, collection: str, version: str, records: Sequence[dict[str, str]] | None = None
    ) -> QuarantineAck:
        """As ``Engine.retry_quarantined``: ``records`` (``{"id", "kind"?}`` each), or all of them."""
        path = f"/v1/collections/{collection}/versions/{version}/quarantine/retry"
        body = {} if records is None else {"records": list(records)}
        return QuarantineAck.model_validate(self._call("POST", path, body))

    def skip_quarantined(
        self, collection: str, version: str, records: Sequence[dict[str, str]] | None = None
    ) -> QuarantineAck:
        """As ``Engine.skip_quarantined``: ``records`` (``{"id", "kind"?}`` each), or all of them."""
        path = f"/v1/collections/{collection}/versions/{version}/quarantine/skip"
        body = {} if records is None else {"records": list(records)}
        return QuarantineAck.model_validate(self._call("POST", path, body))

    def set_traffic(
        self,
        collection: str,
        weights: dict[str, int] | None = None,
        shadow: dict[str, Any] | Literal["off"] | None = None,
        interleave: dict[str, Any] | Literal["off"] | None = None,
    ) -> TrafficInfo:
        """As ``Engine.set_traffic``: None leaves a part unchanged, ``"off"`` turns a setting off."""
        request: dict[str, Any] = {} if weights is None else {"weights": weights}
        for name, value in (("shadow", shadow), ("interleave", interleave)):
            if value is not None:
                request[name] = None if value == "off" else value
        body = self._call("PUT", f"/v1/collections/{collection}/traffic", request)
        return TrafficInfo.model_validate(body)

    def feedback(self, collection: str, feedback: dict[str, Any]) -> FeedbackAck:
        body = self._call("POST", f"/v1/collections/{collection}/feedback", feedback)
        return FeedbackAck.model_validate(body)

    def experiment(self, collection: str) -> ExperimentReport:
        return ExperimentReport.model_validate(self._call("GET", f"/v1/collections/{collection}/experiment"))

    def reset_experiment(self, collection: str) -> ExperimentReport:
        body = self._call("POST", f"/v1/collections/{collection}/experiment/reset")
        return ExperimentReport.model_validate(body)

    def traffic(self, collection: str) -> TrafficInfo:
        return TrafficInfo.model_validate(self._call("GET", f"/v1/collections/{collection}/traffic"))

    def promote(self, collection: str, version: str) -> TrafficInfo:
        body = self._call("POST", f"/v1/collections/{collection}/versions/{version}/promote")
        return TrafficInfo.model_validate(body)

    def rollback(self, collection: str) -> TrafficInfo:
        return TrafficInfo.model_validate(self._call("POST", f"/v1/collections/{collection}/rollback"))

    def retire(self, collection: str, version: str) -> None:
        self._call("DELETE", f"/v1/collections/{collection}/versions/{version}")

    def events(self, collection: str, version: str | None = None) -> list[EventOut]:
        params = {"version": version} if version else None
        return [
            EventOut.model_validate(e)
            for e in self._call("GET", f"/v1/collections/{collection}/events", params=params)
        ]

    def evaluate(
        self,
        collection: str,
        request: dict[str, Any] | BaseModel,
        timeout_s: float | None = EVALUATE_TIMEOUT_S,
    ) -> EvaluateResult:
        """As ``Engine.evaluate``; the request may run long (every query, every version), hence
        its own timeout (None: wait as long as it takes)."""
        path = f"/v1/collections/{collection}/evaluate"
        return EvaluateResult.model_validate(self._long_call(path, request, timeout_s))

    def evaluate_candidate(
        self,
        collection: str,
        version: str,
        request: dict[str, Any] | BaseModel,
        timeout_s: float | None = EVALUATE_TIMEOUT_S,
    ) -> CandidateEvaluation:
        """As ``Engine.evaluate_candidate``, with its own timeout like ``evaluate``."""
        path = f"/v1/collections/{collection}/versions/{version}/evaluate"
        return CandidateEvaluation.model_validate(self._long_call(path, request, timeout_s))

    def _long_call(self, path: str, request: dict[str, Any] | BaseModel, timeout_s: float | None) -> Any:
        body = (
            request.model_dump(mode="json", exclude_none=True) if isinstance(request, BaseModel) else request
        )
        response = self._http.post(path, json=body, timeout=timeout_s)
        _raise_for(response)
        return response.json()

    def start_rollout(self, collection: str, spec: dict[str, Any]) -> RolloutInfo:
        body = self._call("POST", f"/v1/collections/{collection}/rollouts", spec)
        return RolloutInfo.model_validate(body)

    def list_rollouts(self, collection: str) -> list[RolloutInfo]:
        body = self._call("GET", f"/v1/collections/{collection}/rollouts")
        return [RolloutInfo.model_validate(r) for r in body]

    def rollout(self, collection: str, id: int) -> RolloutInfo:
        return RolloutInfo.model_validate(self._call("GET", f"/v1/collections/{collection}/rollouts/{id}"))

    def stop_rollout(self, collection: str, id: int) -> RolloutInfo:
        body = self._call("POST", f"/v1/collections/{collection}/rollouts/{id}/stop")
        return RolloutInfo.model_validate(body)

    def wait_rollout(self, collection: str, id: int, timeout_s: float = 600.0) -> RolloutInfo:
        """Poll until the rollout is over (completed, rolled back or stopped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.rollout(collection, id)
            if info.status != "running":
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"rollout #{id} of {collection!r} still running after {timeout_s} s")
            time.sleep(0.2)

    def wait_ready(self, collection: str, version: str, timeout_s: float = 600.0) -> VersionInfo:
        """Poll until ``version`` is ready and has applied the collection head seen at the call."""
        head = self.describe(collection).head_seq
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.describe_version(collection, version)
            if info.state == "ready" and info.applied_seq >= head:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {version!r} of {collection!r} not ready after {timeout_s} s")
            time.sleep(0.2)
