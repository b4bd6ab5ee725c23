"""A deterministic feature-hashing embedder that needs nothing but numpy."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .._errors import InvalidRequest
from .base import Purpose, l2_normalize, params_digest
from .specs import HashingSpec

# Bump when the features or the hashing change: the fingerprint then changes with the vectors.
ALGORITHM_VERSION = 1
MIN_DIM, MAX_DIM = 8, 4096

_WORD = re.compile(r"\w+")


class HashingModel:
    """Lowercased word unigrams and bigrams, hashed with keyed blake2b into ``dim`` signed buckets.

    Promises:
    - the same (``dim``, ``seed``) gives the same vectors on every machine and Python run;
    - different seeds give nearly orthogonal spaces (cosine ~ 0 +- 1/sqrt(dim) for the same text),
      so versions built with different seeds are told apart by their search results;
    - texts sharing words score higher than texts sharing none;
    - queries and documents are embedded alike; a text with no words gets a fixed non-zero vector,
      so every row has norm 1.
    """

    embeds_text = True
    normalized = True
    batches_queries = False

    def __init__(self, dim: int = 256, seed: int = 0) -> None:
        if not MIN_DIM <= dim <= MAX_DIM:
            raise InvalidRequest(f"hashing dim must be between {MIN_DIM} and {MAX_DIM}, got {dim}")
        self.dim = dim
        self.seed = seed
        self.fingerprint = params_digest("hashing", dim, seed, ALGORITHM_VERSION)
        self._key = hashlib.sha256(f"embedswitch-hashing:{seed}".encode()).digest()
        # Vocabularies repeat heavily; the cache makes re-hashing a word a dict lookup (thread-safe).
        self._slot = functools.lru_cache(maxsize=1 << 18)(self._compute_slot)

    @classmethod
    def from_spec(cls, spec: HashingSpec) -> HashingModel:
        return cls(dim=spec.dim, seed=spec.seed)

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        """``float32 [len(texts), dim]`` with unit rows; ``purpose`` does not change the vectors."""
        rows: list[int] = []
        buckets: list[int] = []
        signs: list[float] = []
        for row, text in enumerate(texts):
            for feature in features(text):
                bucket, sign = self._slot(feature)
                rows.append(row)
                buckets.append(bucket)
                signs.append(sign)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(vectors, (np.asarray(rows, dtype=np.intp), np.asarray(buckets, dtype=np.intp)), signs)
        return l2_normalize(vectors)

    def _compute_slot(self, feature: str) -> tuple[int, float]:
        value = int.from_bytes(
            hashlib.blake2b(feature.encode("utf-8"), digest_size=8, key=self._key).digest(), "little"
        )
        return (value & 0xFFFFFFFF) % self.dim, 1.0 if (value >> 32) & 1 else -1.0

    def __repr__(self) -> str:
        return f"HashingModel(dim={self.dim}, seed={self.seed})"


def features(text: str) -> list[str]:
    """Lowercased word unigrams and space-joined bigrams of ``text``; ``[""]`` when it has no words."""
    if not isinstance(text, str):
        raise InvalidRequest(f"texts to embed must be strings, got {type(text).__name__}")
    words = _WORD.findall(text.lower())
    if not words:
        return [""]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
