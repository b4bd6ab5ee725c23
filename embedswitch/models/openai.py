"""Models behind an OpenAI-compatible ``/v1/embeddings`` endpoint."""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from .._errors import InputRejected, InvalidRequest, ModelUnavailable
from .base import Purpose, l2_normalize, params_digest
from .specs import OpenAISpec
from .tokens import estimate_tokens, pack, split_text

if TYPE_CHECKING:
    import httpx

# Embedded at load time to learn the dimension and check that the endpoint answers.
PROBE_TEXT = "embedswitch probe: the quick brown fox jumps over the lazy dog"

RETRIED_STATUSES = frozenset({408, 429})
"""Besides every 5xx: statuses that say "not now", retried with backoff."""
REJECTING_STATUSES = frozenset({400, 413, 422})
"""Statuses that reject the request's inputs: ``InputRejected``, never retried as is."""
BACKOFF = wait_exponential_jitter(multiplier=0.5, max=20.0, jitter=0.5)
"""The wait before a retry when the answer gives no ``Retry-After``: 0.5 s doubling, at most 20 s,
plus up to 0.5 s of random jitter so that parallel callers don't retry in step."""


def endpoint_url(url: str) -> str:
    """The URL to POST to: ``url`` itself if it ends with ``/embeddings``, else ``/v1/embeddings`` added."""
    base = url.rstrip("/")
    if base.endswith("/embeddings"):
        return base
    if base.endswith("/v1"):
        return f"{base}/embeddings"
    return f"{base}/v1/embeddings"


class _Retryable(Exception):
    """One attempt failed in a way that may pass (429, 408, 5xx, timeout, connection error)."""

    def __init__(self, problem: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(problem)
        self.problem, self.status, self.retry_after_s = problem, status, retry_after_s


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait that an answer asks for: ``retry-after-ms``, else ``Retry-After`` in seconds
    or as an HTTP date; None when it asks for nothing (or nothing readable)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def retry_wait(state: RetryCallState) -> float:
    """The answer's ``Retry-After`` when it gave one, else ``BACKOFF``."""
    error = state.outcome.exception() if state.outcome is not None else None
    if isinstance(error, _Retryable) and error.retry_after_s is not None:
        return error.retry_after_s
    return float(BACKOFF(state))


class OpenAIModel:
    """Embeds by POSTing ``{"model", "input", "dimensions"?}`` to an OpenAI-compatible endpoint.

    Inputs go in requests within the provider's limits (``batch_size`` inputs and
    ``max_request_tokens`` tokens each); an input over ``max_input_tokens`` is split and its
    chunks' vectors averaged (``models/tokens.py``). Rows come back in input order (sorted by
    ``index``), L2-normalised float32. ``dim`` and the fingerprint come from embedding a fixed probe
    text when the model is created. The fingerprint is the model name and ``dim``, independent of
    the URL: remote weights can't be hashed, and hosted embeddings vary slightly from call to call,
    so a probe vector would make the fingerprint flap; a different model served under the same
    name is not detected.

    Failures: 429, 408, 5xx, timeouts and connection errors are retried (see ``OpenAISpec``), then
    raise ``ModelUnavailable``; so do other non-2xx answers (401, 404: not retried) and answers of
    the wrong shape. 400, 413 and 422 raise ``InputRejected``: for a single text, only once the
    endpoint has accepted the probe text again (else the endpoint refuses everything: that is
    ``ModelUnavailable``, not this text's fault). Errors name the URL and status, never the
    answer's body. Redirects are not followed. Thread-safe: one pooled ``httpx.Client`` is shared.
    """

    dim: int
    fingerprint: str

    embeds_text = True
    normalized = True
    batches_queries = True

    def __init__(
        self, spec: OpenAISpec, api_key: str | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        """Connect and probe. ``sleep`` waits between retries (tests pass one that records)."""
        import httpx

        self.url = endpoint_url(spec.url)
        self.model = spec.model
        self.spec = spec
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.Client = httpx.Client(timeout=spec.timeout_s, headers=headers)
        self.dim = 0  # unknown until the probe answers
        try:
            probe = self._probe(spec.query_retry_max_s)  # someone waits for the version to load
        except ModelUnavailable:
            self._client.close()
            raise
        if spec.dimensions is not None and probe.shape[1] != spec.dimensions:
            self._client.close()
            raise ModelUnavailable(
                f"{self.url} returned {probe.shape[1]}-dim vectors for model {spec.model!r} although "
                f"dimensions={spec.dimensions} was asked; check that the endpoint supports 'dimensions'",
                url=self.url,
            )
        self.dim = int(probe.shape[1])
        self.fingerprint = params_digest("openai", spec.model, self.dim)

    @classmethod
    def from_spec(cls, spec: OpenAISpec) -> OpenAIModel:
        """Connect and probe; the API key is read from ``spec.api_key_env`` now."""
        api_key = None
        if spec.api_key_env is not None:
            api_key = os.environ.get(spec.api_key_env)
            if not api_key:
                raise ModelUnavailable(
                    f"environment variable {spec.api_key_env!r} (api_key_env of the openai model "
                    f"{spec.model!r}) is not set; export the API key under that name",
                    url=spec.url,
                )
        return cls(spec, api_key)

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        """``float32 [len(texts), dim]`` with unit rows; ``purpose`` sets the retry budget only."""
        batch = [_checked(text) for text in texts]
        budget = self.spec.query_retry_max_s if purpose == "query" else self.spec.retry_max_s
        try:
            return self._embed(batch, budget)
        except InputRejected:
            if len(batch) == 1:
                self._probe(budget)  # the endpoint may refuse every text now: not this text's fault
            raise

    def _probe(self, budget_s: float) -> np.ndarray:
        """The probe text's vector; ``ModelUnavailable`` if the endpoint rejects even that."""
        try:
            return self._post([PROBE_TEXT], budget_s)
        except InputRejected as exc:
            raise ModelUnavailable(
                f"{exc.message}, even for its probe text: it refuses every input; check the model spec "
                "(model, dimensions) against the endpoint",
                url=self.url,
                status=exc.context.get("status"),
            ) from exc

    def _embed(self, texts: list[str], budget_s: float) -> np.ndarray:
        """Every text's vector: long texts split into chunks, the chunks sent in packed requests,
        each text's chunks averaged by size."""
        limit = min(self.spec.max_input_tokens, self.spec.max_request_tokens)
        pieces, owners = [], []
        for i, text in enumerate(texts):
            for chunk in split_text(text, limit):
                pieces.append(chunk)
                owners.append(i)
        costs = [estimate_tokens(piece) for piece in pieces]
        runs = pack(costs, self.spec.batch_size, self.spec.max_request_tokens)
        parts = [self._post(pieces[run.start : run.stop], budget_s) for run in runs]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.concatenate(parts)
        if len(pieces) == len(texts):
            return np.ascontiguousarray(vectors, dtype=np.float32)
        merged = np.zeros((len(texts), vectors.shape[1]), dtype=np.float64)
        np.add.at(merged, owners, vectors * np.asarray(costs, dtype=np.float64)[:, None])
        return l2_normalize(merged)

    def close(self) -> None:
        """Close the pooled connections; the model must not be used afterwards."""
        self._client.close()

    def _post(self, texts: list[str], budget_s: float) -> np.ndarray:
        """One request's vectors, retried while it fails in a way that may pass."""
        retrying = Retrying(
            stop=stop_after_attempt(self.spec.retry_attempts) | stop_before_delay(budget_s),
            wait=retry_wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            retry_error_callback=self._give_up,
        )
        vectors: np.ndarray = retrying(self._post_once, texts)
        return vectors

    def _give_up(self, state: RetryCallState) -> np.ndarray:
        error = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(error, _Retryable)
        raise ModelUnavailable(
            f"embedding endpoint {self.url} {error.problem}; gave up after {state.attempt_number} "
            f"attempt(s) in {state.seconds_since_start or 0:.1f} s (retry_attempts, retry_max_s of the "
            "model spec)",
            url=self.url,
            status=error.status,
        ) from error

    def _post_once(self, texts: list[str]) -> np.ndarray:
        import httpx

        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self.spec.dimensions is not None:
            body["dimensions"] = self.spec.dimensions
        try:
            response = self._client.post(self.url, json=body)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(f"is unreachable ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise ModelUnavailable(
                f"embedding endpoint {self.url} is unreachable ({type(exc).__name__}); check the URL "
                "and that the endpoint is up",
                url=self.url,
            ) from exc
        status = response.status_code
        if status in RETRIED_STATUSES or status >= 500:
            raise _Retryable(f"answered HTTP {status}", status, retry_after_s(response.headers))
        if status in REJECTING_STATUSES:
            raise InputRejected(
                f"embedding endpoint {self.url} rejected the input (HTTP {status})",
                url=self.url,
                status=status,
            )
        if not response.is_success:
            raise ModelUnavailable(
                f"embedding endpoint {self.url} answered HTTP {status}; {_status_hint(status, self.model)}",
                url=self.url,
                status=status,
            )
        return self._vectors(response, len(texts))

    def _vectors(self, response: httpx.Response, expected: int) -> np.ndarray:
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise self._bad_shape(response, f"an unreadable answer ({type(exc).__name__})") from exc
        if vectors.ndim != 2 or vectors.shape[0] != expected:
            raise self._bad_shape(response, f"{vectors.shape[0]} vectors for {expected} texts")
        if self.dim and vectors.shape[1] != self.dim:
            raise self._bad_shape(response, f"{vectors.shape[1]}-dim vectors, expected {self.dim}")
        if not np.isfinite(vectors).all() or not vectors.any(axis=1).all():
            raise self._bad_shape(response, "zero or non-finite vectors")
        return l2_normalize(vectors)

    def _bad_shape(self, response: httpx.Response, problem: str) -> ModelUnavailable:
        return ModelUnavailable(
            f"embedding endpoint {self.url} (HTTP {response.status_code}) gave {problem}; "
            "is it an OpenAI-compatible /v1/embeddings endpoint?",
            url=self.url,
            status=response.status_code,
        )

    def __repr__(self) -> str:
        return f"OpenAIModel(url={self.url!r}, model={self.model!r}, dim={self.dim})"


def _status_hint(status: int, model: str) -> str:
    """What to check for an error status (the answer's body is never repeated: the URL is the
    caller's choice, and what an arbitrary server answers is not for the caller to read)."""
    if status in (401, 403):
        return "check the API key in the variable named by api_key_env"
    if status == 404:
        return (
            f"check the URL (it should end in /v1 or /embeddings) and that the model {model!r} exists there"
        )
    if status == 429:
        return "the endpoint is rate limiting; retry later or lower the request rate"
    if status >= 500:
        return "the endpoint failed; retry later"
    if 300 <= status < 400:
        return "redirects are not followed; give the URL it redirects to"
    return "check that the URL is an OpenAI-compatible /v1/embeddings endpoint"


def _checked(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidRequest(f"texts to embed must be strings, got {type(text).__name__}")
    return text
