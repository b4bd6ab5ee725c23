"""Loading models: a spec becomes an ``EmbeddingModel``, one instance per distinct spec per process.

Each model type maps to its adapter as a dotted path (``ADAPTERS``), imported only when a model of
that type is first loaded, so the heavy libraries (torch, sentence-transformers, model2vec, httpx)
load only when used, and a model whose optional dependency is not installed fails to load with
``ModelNotInstalled`` naming the extra (``extras.py``). A new adapter is one module and one line
here (plus its spec in ``specs.py``).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from .access import ModelAccess
from .base import EmbeddingModel
from .extras import needs_extra
from .specs import HistoryMeanSpec, HybridSpec, ModelSpec, NoneSpec, canonical_json, parse_model_spec

ADAPTERS: dict[str, str] = {
    "hashing": "embedswitch.models.hashing:HashingModel",
    "minilm": "embedswitch.models.sentence_transformers:SentenceTransformerModel",
    "minilm-static": "embedswitch.models.model2vec:StaticEmbeddingModel",
    "sentence-transformers": "embedswitch.models.sentence_transformers:SentenceTransformerModel",
    "model2vec": "embedswitch.models.model2vec:StaticEmbeddingModel",
    "openai": "embedswitch.models.openai:OpenAIModel",
    "history-mean": "embedswitch.models.history_mean:HistoryMeanModel",
    "als": "embedswitch.models.als:AlsModel",
    "none": "embedswitch.models.precomputed:PrecomputedModel",
    "bm25": "embedswitch.models.lexical:Bm25Model",
    "hybrid": "embedswitch.models.lexical:HybridModel",
}
"""Model type -> ``module:class`` of its adapter; each class has ``from_spec(spec)``."""

_models: dict[str, EmbeddingModel] = {}
_loading: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def load_model(spec: str | dict[str, Any] | ModelSpec, access: ModelAccess | None = None) -> EmbeddingModel:
    """The loaded model for ``spec``, shared process-wide.

    Equal specs give the same instance; when several threads ask for one spec at once, it is loaded
    once and the others wait. Different specs load in parallel. Raises ``UnknownModel`` for a bad
    spec or missing model files, ``ModelNotInstalled`` when the model's extra is not installed and
    ``ModelUnavailable`` for an unreachable endpoint; a failed load is not cached. With ``access``,
    a spec that reaches beyond it raises ``ModelNotAllowed`` first, before anything is read or sent
    (even when an equal spec is loaded already); without, the caller vouches for the spec (code
    that wrote it itself).
    """
    parsed = parse_model_spec(spec)
    if access is not None:
        access.check(parsed)
    key = canonical_json(parsed)
    with _guard:
        if key in _models:
            return _models[key]
        lock = _loading.setdefault(key, threading.Lock())
    with lock:
        with _guard:
            if key in _models:
                return _models[key]
        model = _build(parsed)
        with _guard:
            _models[key] = model
            _loading.pop(key, None)
    return model


def _build(spec: ModelSpec) -> EmbeddingModel:
    module, _, name = ADAPTERS[spec.type].partition(":")
    with needs_extra(spec.type):
        adapter: Any = getattr(importlib.import_module(module), name)
        if isinstance(spec, HistoryMeanSpec):  # it wraps a text model, loaded (and shared) like any other
            model: EmbeddingModel = adapter(load_model(spec.text), spec.half_life_days)
        elif isinstance(spec, HybridSpec):
            model = adapter(load_model(spec.dense), spec)
        elif isinstance(spec, NoneSpec):
            model = adapter(spec, load_model(spec.query) if spec.query is not None else None)
        else:
            model = adapter.from_spec(spec)
    return model
