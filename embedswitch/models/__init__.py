"""The embedding-model seam: specs name a model, ``load_model`` gives an ``EmbeddingModel``.

Adapters (hashing, sentence-transformers, model2vec, OpenAI-compatible HTTP) import their heavy
libraries only when a model of their type is loaded.
"""

from .base import EmbeddingModel, Purpose, l2_normalize
from .registry import (
    SHORT_NAMES,
    HashingSpec,
    MiniLMSpec,
    MiniLMStaticSpec,
    Model2VecSpec,
    ModelSpec,
    OpenAISpec,
    SentenceTransformersSpec,
    load_model,
    model_label,
    parse_model_spec,
    set_torch_threads,
    spec_to_dict,
)

__all__ = [
    "SHORT_NAMES",
    "EmbeddingModel",
    "HashingSpec",
    "MiniLMSpec",
    "MiniLMStaticSpec",
    "Model2VecSpec",
    "ModelSpec",
    "OpenAISpec",
    "Purpose",
    "SentenceTransformersSpec",
    "l2_normalize",
    "load_model",
    "model_label",
    "parse_model_spec",
    "set_torch_threads",
    "spec_to_dict",
]
