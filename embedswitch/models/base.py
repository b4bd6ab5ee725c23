"""The embedding-model seam: the model protocols, and the fingerprint and file helpers adapters share."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from .._errors import EmbedswitchError, UnknownModel

Purpose = Literal["document", "query"]


@runtime_checkable
class EmbeddingModel(Protocol):
    """Turns texts into vectors.

    Callers may rely on:
    - ``dim`` never changes for an instance;
    - ``embeds_text``: False for a model whose ``encode`` raises ``TextNotSupported`` (its vectors
      are loaded, not embedded); ``normalized``: False for a model whose vectors keep their norms
      and are compared by plain inner product; ``batches_queries``: True where concurrent queries
      gain from being embedded in one call (transformers, remote endpoints), False where a call
      costs about the same per text whatever the batch (static and hashing models);
    - ``fingerprint`` is a stable hex digest of the weights/files and every parameter that changes
      the output, so two instances with the same fingerprint give the same vectors;
    - ``encode`` returns ``float32`` of shape ``[len(texts), dim]`` whose rows have L2 norm 1,
      is safe to call from several threads, and never downloads anything.
    """

    dim: int
    fingerprint: str
    embeds_text: bool
    normalized: bool
    batches_queries: bool

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray: ...


@runtime_checkable
class UserModel(Protocol):
    """A model for recommendations whose user vectors are derived from the version's own item
    vectors over each user's interactions (``derives_users``), never embedded from text.

    Callers may rely on: ``user_vector`` is deterministic in its inputs. ``item_gram`` gives
    ``YᵀY`` over every item vector of the version, computed only if the model needs it.
    Such a model may also embed no text (``embeds_text = False``) and keep its norms."""

    derives_users: bool

    def user_vector(
        self,
        item_ids: Sequence[str],
        item_vectors: np.ndarray,
        weights: Sequence[float],
        ts: Sequence[float],
        item_gram: Callable[[], np.ndarray],
    ) -> np.ndarray: ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm, as contiguous float32 (all-zero rows stay zero)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    # np.linalg.norm's own arithmetic (so the same bits), without its checks: queries pass here
    norms = np.sqrt(np.add.reduce(vectors * vectors, axis=1, keepdims=True))
    if not norms.all():
        norms[norms == 0] = 1.0
    return vectors / norms


def local_model_dir(path: str, kind: str) -> Path:
    """``path`` as an existing directory, or ``UnknownModel`` saying models are never downloaded."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise UnknownModel(
            f"{kind} model directory {str(directory)!r} does not exist; give the path of a model saved "
            "on this machine (embedswitch never downloads models)",
            model=kind,
        )
    return directory.resolve()


@contextlib.contextmanager
def loading(kind: str, directory: Path, device: str | None = None) -> Iterator[None]:
    """Turns a library's failure to load the model in ``directory`` (not a model, a broken or
    partial one, a device this machine lacks) into ``UnknownModel``: a spec's fault, never a 500."""
    try:
        yield
    except EmbedswitchError:
        raise
    except Exception as exc:
        on = f" on device {device!r}" if device else ""
        raise UnknownModel(
            f"could not load a {kind} model from {str(directory)!r}{on} ({type(exc).__name__}: "
            f"{str(exc)[:200]}); give the directory of a complete {kind} model saved with "
            f"save_pretrained{', and a device this machine has' if device else ''}",
            model=kind,
        ) from exc


# Files that describe a model but never change its vectors (a distilled model's README carries a date).
_NOT_WEIGHTS = {".md"}
_file_digests: dict[tuple[str, int, int], str] = {}
_file_digests_lock = threading.Lock()


def directory_digest(directory: Path) -> str:
    """sha256 over every file under ``directory`` (relative path and content), docs excluded.

    File contents are hashed once per (path, size, mtime) per process, since weights are large.
    """
    outer = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix not in _NOT_WEIGHTS):
        relative = file.relative_to(directory).as_posix()
        outer.update(f"{relative}\0{_file_digest(file)}\n".encode())
    return outer.hexdigest()


def _file_digest(file: Path) -> str:
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    with _file_digests_lock:
        cached = _file_digests.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    with _file_digests_lock:
        _file_digests[key] = digest.hexdigest()
    return digest.hexdigest()


def params_digest(*parts: object) -> str:
    """sha256 of ``parts`` as canonical JSON: the fingerprint of a model given its weights and params."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
