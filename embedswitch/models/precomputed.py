"""``none``: no embedding model; records bring their own vectors, a text model may embed queries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._errors import TextNotSupported, UnknownModel
from .base import EmbeddingModel, Purpose, params_digest
from .specs import NoneSpec


class PrecomputedModel:
    """A version of this model holds the vectors its records carry (``Version.takes_vectors``), as
    they are or scaled to unit length (``normalized``). It embeds no documents; queries only through
    the optional ``query`` model, whose dimension must be ``dim``."""

    embeds_text = False

    def __init__(self, spec: NoneSpec, query: EmbeddingModel | None) -> None:
        if query is not None and query.dim != spec.dim:
            raise UnknownModel(
                f"the query model makes {query.dim}-dim vectors but this version declares dim {spec.dim}; "
                "declare the query model's dimension or pick a query model that makes it",
                model="none",
            )
        self.spec, self.query, self.dim = spec, query, spec.dim
        self.normalized = spec.normalize
        self.batches_queries = query.batches_queries if query is not None else False
        self.fingerprint = params_digest(
            "none", spec.dim, spec.normalize, query.fingerprint if query is not None else None
        )

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        if purpose == "document":
            raise TextNotSupported('a version with model "none" embeds no text: send each record\'s "vector"')
        if self.query is None:
            raise TextNotSupported(
                'this version has no query model (model "none"): search it with "vector": [...] or '
                '"like": {"kind": ..., "id": ...}, or create a version that names one, e.g. '
                f'{{"type": "none", "dim": {self.dim}, "query": "minilm"}}'
            )
        return self.query.encode(texts, purpose)

    def __repr__(self) -> str:
        return f"PrecomputedModel({self.spec!r})"
