"""The embedding-model seam: specs name a model, ``load_model`` gives an ``EmbeddingModel``.

``specs.py`` holds every spec, ``registry.py`` maps a spec's type to its adapter module (imported
only when a model of that type loads), ``extras.py`` the optional extras that install the heavy
libraries, ``base.py`` the protocols. One module per adapter: hashing,
sentence-transformers, model2vec, OpenAI-compatible HTTP, history-mean, ALS, ``none`` for
records that bring their own vectors, and ``lexical.py`` (``bm25``, ``hybrid``) for versions that
index the text itself. ``access.py`` checks what a spec may reach (environment variables, local
directories, URLs) before it loads.
"""

from .access import ModelAccess
from .base import EmbeddingModel, Purpose, UserModel, l2_normalize
from .registry import load_model
from .specs import (
    SHORT_NAMES,
    AlsSpec,
    Bm25Spec,
    HashingSpec,
    HistoryMeanSpec,
    HybridSpec,
    LexicalSpec,
    MiniLMSpec,
    MiniLMStaticSpec,
    Model2VecSpec,
    ModelSpec,
    NoneSpec,
    OpenAISpec,
    SentenceTransformersSpec,
    model_label,
    parse_model_spec,
    spec_to_dict,
)
from .threads import set_blas_threads, set_torch_threads

__all__ = [
    "SHORT_NAMES",
    "AlsSpec",
    "Bm25Spec",
    "EmbeddingModel",
    "HashingSpec",
    "HistoryMeanSpec",
    "HybridSpec",
    "LexicalSpec",
    "MiniLMSpec",
    "MiniLMStaticSpec",
    "Model2VecSpec",
    "ModelAccess",
    "ModelSpec",
    "NoneSpec",
    "OpenAISpec",
    "Purpose",
    "SentenceTransformersSpec",
    "UserModel",
    "l2_normalize",
    "load_model",
    "model_label",
    "parse_model_spec",
    "set_blas_threads",
    "set_torch_threads",
    "spec_to_dict",
]
