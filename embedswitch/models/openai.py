"""Models behind an OpenAI-compatible ``/v1/embeddings`` endpoint."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import InvalidRequest, ModelUnavailable
from .base import Purpose, l2_normalize, params_digest
from .specs import OpenAISpec

if TYPE_CHECKING:
    import httpx

# Embedded at load time to learn the dimension and check that the endpoint answers.
PROBE_TEXT = "embedswitch probe: the quick brown fox jumps over the lazy dog"


def endpoint_url(url: str) -> str:
    """The URL to POST to: ``url`` itself if it ends with ``/embeddings``, else ``/v1/embeddings`` added."""
    base = url.rstrip("/")
    if base.endswith("/embeddings"):
        return base
    if base.endswith("/v1"):
        return f"{base}/embeddings"
    return f"{base}/v1/embeddings"


class OpenAIModel:
    """Embeds by POSTing ``{"model", "input", "dimensions"?}`` to an OpenAI-compatible endpoint.

    Texts go in batches of ``batch_size``; rows come back in input order (sorted by ``index``),
    L2-normalised float32. ``dim`` and the fingerprint come from embedding a fixed probe text when the
    model is created. The fingerprint is the model name and ``dim``, independent of the URL: remote
    weights can't be hashed, and hosted embeddings vary slightly from call to call, so a probe
    vector would make the fingerprint flap; a different model served under the same name is not
    detected. Connection failures, timeouts, non-2xx answers and answers of
    the wrong shape raise ``ModelUnavailable`` naming the URL (and status), never repeating what the
    endpoint answered. Redirects are not followed. Thread-safe: one pooled ``httpx.Client`` is shared.
    """

    dim: int
    fingerprint: str

    embeds_text = True
    normalized = True
    batches_queries = True

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 128,
        timeout_s: float = 30.0,
    ) -> None:
        import httpx

        self.url = endpoint_url(url)
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.Client = httpx.Client(timeout=timeout_s, headers=headers)
        self.dim = 0  # unknown until the probe answers
        try:
            probe = self._post([PROBE_TEXT])
        except ModelUnavailable:
            self._client.close()
            raise
        if dimensions is not None and probe.shape[1] != dimensions:
            self._client.close()
            raise ModelUnavailable(
                f"{self.url} returned {probe.shape[1]}-dim vectors for model {model!r} although "
                f"dimensions={dimensions} was asked; check that the endpoint supports 'dimensions'",
                url=self.url,
            )
        self.dim = int(probe.shape[1])
        self.fingerprint = params_digest("openai", model, self.dim)

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
        return cls(
            spec.url,
            spec.model,
            api_key=api_key,
            dimensions=spec.dimensions,
            batch_size=spec.batch_size,
            timeout_s=spec.timeout_s,
        )

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        """``float32 [len(texts), dim]`` with unit rows; ``purpose`` does not change the request."""
        batch = [_checked(text) for text in texts]
        parts = [self._post(batch[i : i + self.batch_size]) for i in range(0, len(batch), self.batch_size)]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def close(self) -> None:
        """Close the pooled connections; the model must not be used afterwards."""
        self._client.close()

    def _post(self, texts: list[str]) -> np.ndarray:
        import httpx

        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise ModelUnavailable(
                f"embedding endpoint {self.url} is unreachable ({type(exc).__name__}); check the URL "
                "and that the endpoint is up",
                url=self.url,
            ) from exc
        if not response.is_success:
            raise ModelUnavailable(
                f"embedding endpoint {self.url} answered HTTP {response.status_code}; "
                f"{_status_hint(response.status_code, self.model)}",
                url=self.url,
                status=response.status_code,
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
