"""The models of lexical versions: ``bm25`` (no vectors at all) and ``hybrid`` (BM25 beside a dense
text model, whose vectors it gives).

Neither embeds anything lexical: the text itself goes to the version's lexical index
(``index/lexical.py``), which tokenizes and scores it. These adapters give the version what the
model seam promises (a dimension, a fingerprint, ``encode``), so the applier and the backfill treat
a lexical version like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import EmbeddingModel, Purpose, params_digest
from .specs import Bm25Spec, HybridSpec

LEXICAL_FORMAT = 1
"""Bump when the lexical index's tokenizing or scoring changes: the fingerprint changes with it."""


class Bm25Model:
    """BM25 alone: dimension 0, ``encode`` gives empty rows (nothing to compute)."""

    dim = 0
    embeds_text = True
    normalized = True
    batches_queries = False

    def __init__(self, spec: Bm25Spec) -> None:
        self.spec = spec
        self.fingerprint = params_digest("bm25", spec.tokenizer, LEXICAL_FORMAT)

    @classmethod
    def from_spec(cls, spec: Bm25Spec) -> Bm25Model:
        return cls(spec)

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        return np.zeros((len(texts), 0), dtype=np.float32)


class HybridModel:
    """BM25 beside ``dense``: the vectors are ``dense``'s; the fingerprint covers both parts."""

    embeds_text = True

    def __init__(self, dense: EmbeddingModel, spec: HybridSpec) -> None:
        self.dense = dense
        self.spec = spec
        self.dim = dense.dim
        self.normalized = dense.normalized
        self.batches_queries = dense.batches_queries
        self.fingerprint = params_digest("hybrid", dense.fingerprint, spec.lexical.tokenizer, LEXICAL_FORMAT)

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        return self.dense.encode(texts, purpose)
