"""The OpenAI-compatible adapter against a real uvicorn server serving the hashing model.

The server is a fake only in the faults it injects on demand (a scripted status per request, a
rejected text, a slow answer), which a hosted provider produces but not when a test asks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from _remote import serve
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from embedswitch._errors import InputRejected, ModelUnavailable
from embedswitch.models import OpenAISpec, l2_normalize, load_model
from embedswitch.models.hashing import HashingModel
from embedswitch.models.openai import OpenAIModel, endpoint_url, retry_after_s

SEEDS = {"hash-a": 0, "hash-b": 1}
DEFAULT_DIM = 64


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str]
    dimensions: int | None = None


@dataclass
class ServerState:
    """What the test server does, and the requests it has seen."""

    mode: str = "ok"  # ok | fail | short | reject-all
    api_key: str | None = None
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # next answers: status, headers
    poison: str | None = None  # a request with this text is answered 400
    delay_s: float = 0.0  # the next answer comes this late (once)
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)


def _fault(state: ServerState, texts: list[str]) -> JSONResponse | None:
    """The fault to answer with instead of vectors, if any (the body is the provider's, never echoed)."""
    if state.delay_s:
        delay, state.delay_s = state.delay_s, 0.0
        time.sleep(delay)
    if state.script:
        status, headers = state.script.pop(0)
        return JSONResponse({"error": {"message": "secret-body"}}, status_code=status, headers=headers)
    if state.mode == "fail":
        return JSONResponse({"error": {"message": "boom secret-body"}}, status_code=500)
    if state.mode == "reject-all" or (state.poison is not None and state.poison in texts):
        return JSONResponse({"error": {"message": "invalid input secret-body"}}, status_code=400)
    return None


def make_app(state: ServerState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: EmbeddingRequest, authorization: str | None = Header(None)) -> Any:
        state.requests.append(body.model_dump(exclude_none=True))
        state.authorizations.append(authorization)
        if state.api_key is not None and authorization != f"Bearer {state.api_key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        fault = _fault(state, body.input)
        if fault is not None:
            return fault
        if body.model not in SEEDS:
            return JSONResponse({"error": {"message": "no such model"}}, status_code=404)
        model = HashingModel(dim=body.dimensions or DEFAULT_DIM, seed=SEEDS[body.model])
        vectors = model.encode(body.input) * 3.0  # not normalised: the client must normalise
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        data.reverse()  # out of order: the client must sort by index
        if state.mode == "short":
            data = data[1:]
        return {"object": "list", "model": body.model, "data": data}

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    with serve(make_app(state)) as url:
        yield url, state


@pytest.fixture
def state(server: tuple[str, ServerState]) -> Iterator[ServerState]:
    _, shared = server
    _reset(shared)
    yield shared
    _reset(shared)


def _reset(state: ServerState) -> None:
    state.mode, state.api_key, state.poison, state.delay_s = "ok", None, None, 0.0
    state.script.clear()
    state.requests.clear()
    state.authorizations.clear()


@pytest.fixture
def url(server: tuple[str, ServerState], state: ServerState) -> str:
    return server[0]


TEXTS = [f"text number {i} about subject {i % 3}" for i in range(7)]


def test_vectors_equal_the_served_model(url: str) -> None:
    model = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a"))
    vectors = model.encode(TEXTS, purpose="query")
    assert model.dim == DEFAULT_DIM
    assert vectors.shape == (len(TEXTS), DEFAULT_DIM)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    assert np.allclose(vectors, HashingModel(dim=DEFAULT_DIM, seed=0).encode(TEXTS), atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    model.close()


def test_texts_go_in_batches(url: str, state: ServerState) -> None:
    model = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a", batch_size=3))
    state.requests.clear()
    vectors = model.encode(TEXTS)
    assert [len(r["input"]) for r in state.requests] == [3, 3, 1]
    assert [text for r in state.requests for text in r["input"]] == TEXTS
    assert all(r["model"] == "hash-a" and "dimensions" not in r for r in state.requests)
    assert np.allclose(vectors, HashingModel(dim=DEFAULT_DIM, seed=0).encode(TEXTS), atol=1e-6)
    assert model.encode([]).shape == (0, DEFAULT_DIM)
    model.close()


def test_dimensions_are_sent_and_checked(url: str, state: ServerState) -> None:
    model = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-b", dimensions=32))
    assert model.dim == 32
    assert np.allclose(model.encode(TEXTS), HashingModel(dim=32, seed=1).encode(TEXTS), atol=1e-6)
    assert all(r["dimensions"] == 32 for r in state.requests)
    model.close()


def test_api_key_is_sent_from_the_named_environment_variable(
    url: str, state: ServerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    state.api_key = "sk-test-123"
    monkeypatch.setenv("EMBEDSWITCH_TEST_KEY", "sk-test-123")
    model = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a", api_key_env="EMBEDSWITCH_TEST_KEY"))
    model.encode(["hello"])
    assert state.authorizations and set(state.authorizations) == {"Bearer sk-test-123"}
    model.close()


def test_no_authorization_header_without_api_key_env(url: str, state: ServerState) -> None:
    OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a")).close()
    assert state.authorizations == [None]


def test_wrong_key_is_model_unavailable(
    url: str, state: ServerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    state.api_key = "right"
    monkeypatch.setenv("EMBEDSWITCH_TEST_KEY", "wrong")
    with pytest.raises(ModelUnavailable, match="HTTP 401"):
        OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a", api_key_env="EMBEDSWITCH_TEST_KEY"))


def test_unset_api_key_env_is_model_unavailable(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDSWITCH_TEST_MISSING_KEY", raising=False)
    with pytest.raises(ModelUnavailable, match="EMBEDSWITCH_TEST_MISSING_KEY"):
        OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a", api_key_env="EMBEDSWITCH_TEST_MISSING_KEY"))


class Waits:
    """Records each wait the model asks for between retries, instead of sleeping it."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def test_server_error_is_retried_then_model_unavailable_with_url_and_status(
    url: str, state: ServerState
) -> None:
    waits = Waits()
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a", retry_attempts=3), sleep=waits)
    state.mode = "fail"
    state.requests.clear()
    with pytest.raises(ModelUnavailable) as info:
        model.encode(TEXTS)
    assert len(state.requests) == 3 and len(waits.asked) == 2  # three tries, two waits between them
    assert "HTTP 500" in info.value.message and "gave up after 3 attempt(s)" in info.value.message
    assert f"{url}/v1/embeddings" in info.value.message
    assert "secret-body" not in info.value.message  # the provider's answer is never echoed
    assert info.value.context["status"] == 500
    assert info.value.status == 503
    model.close()


def test_429_waits_what_retry_after_asks_then_succeeds(url: str, state: ServerState) -> None:
    waits = Waits()
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a"), sleep=waits)
    state.script[:] = [(429, {"Retry-After": "3"}), (429, {"retry-after-ms": "1500"}), (503, {})]
    state.requests.clear()
    vectors = model.encode(TEXTS)
    assert np.allclose(vectors, HashingModel(dim=DEFAULT_DIM, seed=0).encode(TEXTS), atol=1e-6)
    assert len(state.requests) == 4
    assert waits.asked[:2] == [3.0, 1.5]  # as asked, not the backoff's
    assert 0.5 * 4 <= waits.asked[2] <= 0.5 * 4 + 0.5  # no Retry-After: backoff, third failure in a row
    model.close()


def test_backoff_doubles_with_jitter_within_its_bounds(url: str, state: ServerState) -> None:
    waits = Waits()
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a", retry_attempts=6, retry_max_s=1000), sleep=waits)
    state.script[:] = [(500, {}), (502, {}), (504, {}), (408, {}), (500, {})]
    model.encode(TEXTS)
    assert len(waits.asked) == 5
    for attempt, waited in enumerate(waits.asked):
        assert 0.5 * 2**attempt <= waited <= 0.5 * 2**attempt + 0.5, waits.asked
    model.close()


def test_a_wait_past_the_retry_budget_gives_up_at_once(url: str, state: ServerState) -> None:
    waits = Waits()
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a", retry_max_s=10), sleep=waits)
    state.script[:] = [(429, {"Retry-After": "60"})]
    with pytest.raises(ModelUnavailable, match="HTTP 429; gave up after 1 attempt"):
        model.encode(TEXTS)
    assert waits.asked == []
    model.close()


def test_a_query_retries_within_its_own_shorter_budget(url: str, state: ServerState) -> None:
    waits = Waits()
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a", query_retry_max_s=2), sleep=waits)
    state.script[:] = [(429, {"Retry-After": "3"})]
    with pytest.raises(ModelUnavailable, match="gave up after 1 attempt"):
        model.encode(["a user's query"], purpose="query")
    state.script[:] = [(429, {"Retry-After": "3"})]
    model.encode(["a document"], purpose="document")  # 3 s is within the documents' budget
    assert waits.asked == [3.0]
    model.close()


def test_a_timeout_is_retried(url: str, state: ServerState) -> None:
    waits = Waits()
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a", timeout_s=0.2), sleep=waits)
    state.delay_s = 2.0  # the first answer comes after the client gave up
    vectors = model.encode(TEXTS)
    assert np.allclose(vectors, HashingModel(dim=DEFAULT_DIM, seed=0).encode(TEXTS), atol=1e-6)
    assert len(waits.asked) == 1
    model.close()


def test_client_errors_other_than_rejections_are_not_retried(url: str, state: ServerState) -> None:
    waits = Waits()
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a"), sleep=waits)
    state.script[:] = [(404, {})]
    state.requests.clear()
    with pytest.raises(ModelUnavailable, match="HTTP 404"):
        model.encode(TEXTS)
    assert len(state.requests) == 1 and waits.asked == []
    model.close()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0.25"}, 0.25),
        ({"Retry-After": "Thu, 01 Jan 2026 00:00:30 GMT"}, 30.0),
        ({"Retry-After": "Thu, 01 Jan 2026 00:00:00 GMT"}, 0.0),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_milliseconds_and_dates(
    headers: dict[str, str], expected: float | None
) -> None:
    import httpx

    now = 1767225600.0  # 2026-01-01 00:00:00 UTC
    assert retry_after_s(httpx.Headers(headers), now=now) == expected


def test_a_rejected_batch_is_input_rejected_and_a_rejected_text_too(url: str, state: ServerState) -> None:
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a"), sleep=Waits())
    state.poison = TEXTS[3]
    with pytest.raises(InputRejected, match="HTTP 400") as info:
        model.encode(TEXTS)
    assert info.value.status == 422 and "secret-body" not in info.value.message
    state.requests.clear()
    with pytest.raises(InputRejected):
        model.encode([TEXTS[3]])
    assert [r["input"] for r in state.requests][-1] != [TEXTS[3]]  # the probe text was tried after it
    assert np.allclose(model.encode(TEXTS[:3]), HashingModel(dim=DEFAULT_DIM, seed=0).encode(TEXTS[:3]))
    model.close()


def test_an_endpoint_that_rejects_everything_is_unavailable_not_a_bad_text(
    url: str, state: ServerState
) -> None:
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a"), sleep=Waits())
    state.mode = "reject-all"
    with pytest.raises(InputRejected):
        model.encode(TEXTS)  # a batch: which text is to blame is for the caller to find
    with pytest.raises(ModelUnavailable, match="HTTP 400"):
        model.encode([TEXTS[0]])  # one text, and the probe text is rejected too
    model.close()


def test_requests_stay_within_the_input_and_token_limits(url: str, state: ServerState) -> None:
    texts = [f"text {i:02} is exactly 25 bbb" for i in range(10)]  # 25 bytes: 27 estimated tokens
    assert {len(t.encode()) for t in texts} == {25}
    spec = OpenAISpec(url=url, model="hash-a", batch_size=4, max_request_tokens=100)
    model = OpenAIModel(spec, sleep=Waits())
    state.requests.clear()
    vectors = model.encode(texts)
    assert [len(r["input"]) for r in state.requests] == [3, 3, 3, 1]  # 3 × 27 <= 100 < 4 × 27
    assert np.allclose(vectors, HashingModel(dim=DEFAULT_DIM, seed=0).encode(texts), atol=1e-6)
    model.close()
    state.requests.clear()
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a", batch_size=2), sleep=Waits())
    model.encode(texts)
    assert [len(r["input"]) for r in state.requests[1:]] == [2] * 5  # after the probe
    model.close()


def test_a_long_text_is_split_and_its_chunks_averaged_by_size(url: str, state: ServerState) -> None:
    text = "alpha beta gamma delta " * 10 + "epsilon"  # 237 bytes
    model = OpenAIModel(OpenAISpec(url=url, model="hash-a", max_input_tokens=64), sleep=Waits())
    state.requests.clear()
    (vector,) = model.encode([text])
    (request,) = state.requests
    chunks = request["input"]
    assert "".join(chunks) == text and len(chunks) > 1
    assert all(len(chunk.encode()) + 2 <= 64 for chunk in chunks)
    assert all(chunk.endswith(" ") for chunk in chunks[:-1])  # cut at whitespace
    parts = HashingModel(dim=DEFAULT_DIM, seed=0).encode(chunks)
    sizes = np.array([len(chunk.encode()) + 2 for chunk in chunks], dtype=np.float64)
    expected = l2_normalize((parts * sizes[:, None]).sum(axis=0, keepdims=True))[0]
    assert np.allclose(vector, expected, atol=1e-6)
    model.close()


def test_wrong_number_of_vectors_is_model_unavailable(url: str, state: ServerState) -> None:
    model = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a"))
    state.mode = "short"
    with pytest.raises(ModelUnavailable, match="6 vectors for 7 texts"):
        model.encode(TEXTS)
    model.close()


def test_unknown_model_on_the_server_fails_at_load(url: str) -> None:
    with pytest.raises(ModelUnavailable, match="HTTP 404"):
        OpenAIModel.from_spec(OpenAISpec(url=url, model="no-such-model"))


def test_stopped_server_is_model_unavailable() -> None:
    state = ServerState()
    spec = OpenAISpec(url="http://127.0.0.1:1", model="hash-a", timeout_s=5, retry_attempts=2)
    with serve(make_app(state)) as url:
        spec = spec.model_copy(update={"url": url})
        model = OpenAIModel(spec, sleep=Waits())
        model.encode(["warm the connection pool"])
    with pytest.raises(ModelUnavailable, match="unreachable") as info:
        model.encode(["hello"])
    assert url in info.value.message and "gave up after 2 attempt(s)" in info.value.message
    model.close()
    with pytest.raises(ModelUnavailable, match="unreachable"):
        OpenAIModel(spec, sleep=Waits())


def test_fingerprint_tells_models_apart_but_not_urls(url: str) -> None:
    a = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a"))
    a_again = OpenAIModel.from_spec(OpenAISpec(url=f"{url}/v1/embeddings", model="hash-a", batch_size=2))
    b = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-b"))
    a_small = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a", dimensions=32))
    assert a.fingerprint == a_again.fingerprint
    assert len({a.fingerprint, b.fingerprint, a_small.fingerprint}) == 3
    for model in (a, a_again, b, a_small):
        model.close()


def test_load_model_goes_through_the_registry(url: str) -> None:
    spec = {"type": "openai", "url": url, "model": "hash-a"}
    model = load_model(spec)
    assert isinstance(model, OpenAIModel)
    assert load_model(spec) is model
    assert np.allclose(model.encode(TEXTS), HashingModel(dim=DEFAULT_DIM, seed=0).encode(TEXTS), atol=1e-6)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1/embeddings"),
        ("http://h:8000/", "http://h:8000/v1/embeddings"),
        ("http://h:8000/v1", "http://h:8000/v1/embeddings"),
        ("https://h/openai/deployments/x/embeddings", "https://h/openai/deployments/x/embeddings"),
        ("http://h/v1/embeddings/", "http://h/v1/embeddings"),
    ],
)
def test_endpoint_url(base: str, expected: str) -> None:
    assert endpoint_url(base) == expected
