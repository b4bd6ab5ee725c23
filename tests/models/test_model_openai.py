"""The OpenAI-compatible adapter against a real uvicorn server serving the hashing model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from _remote import serve
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from embedswitch._errors import ModelUnavailable
from embedswitch.models import OpenAISpec, load_model
from embedswitch.models.hashing import HashingModel
from embedswitch.models.openai import OpenAIModel, endpoint_url

SEEDS = {"hash-a": 0, "hash-b": 1}
DEFAULT_DIM = 64


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str]
    dimensions: int | None = None


@dataclass
class ServerState:
    """What the test server does, and the requests it has seen."""

    mode: str = "ok"  # ok | fail | short
    api_key: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)


def make_app(state: ServerState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: EmbeddingRequest, authorization: str | None = Header(None)) -> Any:
        state.requests.append(body.model_dump(exclude_none=True))
        state.authorizations.append(authorization)
        if state.api_key is not None and authorization != f"Bearer {state.api_key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        if state.mode == "fail":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
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
    shared.mode, shared.api_key = "ok", None
    shared.requests.clear()
    shared.authorizations.clear()
    yield shared
    shared.mode, shared.api_key = "ok", None


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


def test_server_error_is_model_unavailable_with_url_and_status(url: str, state: ServerState) -> None:
    model = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a"))
    state.mode = "fail"
    with pytest.raises(ModelUnavailable) as info:
        model.encode(TEXTS)
    assert "HTTP 500" in info.value.message
    assert f"{url}/v1/embeddings" in info.value.message
    assert info.value.context["status"] == 500
    assert info.value.status == 503
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
    with serve(make_app(state)) as url:
        model = OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a", timeout_s=5))
        model.encode(["warm the connection pool"])
    with pytest.raises(ModelUnavailable, match="unreachable") as info:
        model.encode(["hello"])
    assert url in info.value.message
    model.close()
    with pytest.raises(ModelUnavailable, match="unreachable"):
        OpenAIModel.from_spec(OpenAISpec(url=url, model="hash-a", timeout_s=5))


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
