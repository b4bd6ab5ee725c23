"""``history-mean``: users as the time-decayed mean of their items, for recommendations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .base import EmbeddingModel, Purpose, l2_normalize, params_digest

SECONDS_PER_DAY = 86_400.0


class HistoryMeanModel:
    """Texts (items, documents, queries) go through ``text``; a user's vector is derived from the
    version's own item vectors by ``user_vector``. ``derives_users`` tells the engine so."""

    derives_users = True
    embeds_text = True
    normalized = True

    def __init__(self, text: EmbeddingModel, half_life_days: float = 30.0) -> None:
        self.text = text
        self.half_life_s = half_life_days * SECONDS_PER_DAY
        self.dim = text.dim
        self.batches_queries = text.batches_queries
        self.fingerprint = params_digest("history-mean", text.fingerprint, half_life_days)

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        return self.text.encode(texts, purpose)

    def user_vector(
        self,
        item_ids: Sequence[str],
        item_vectors: np.ndarray,
        weights: Sequence[float],
        ts: Sequence[float],
        item_gram: Callable[[], np.ndarray],
    ) -> np.ndarray:
        """Unit mean of ``item_vectors`` weighted by ``weight * 0.5 ** (age / half_life)``, the age
        measured from the latest of ``ts``."""
        times = np.asarray(ts, dtype=np.float64)
        decay = 0.5 ** ((times.max() - times) / self.half_life_s)
        mix = (np.asarray(weights, dtype=np.float64) * decay) @ item_vectors.astype(np.float64)
        return l2_normalize(mix[None, :].astype(np.float32))[0]

    def __repr__(self) -> str:
        return f"HistoryMeanModel(text={self.text!r}, half_life_s={self.half_life_s})"
