"""model2vec static models: any saved one, and MiniLM distilled once and cached on disk."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._errors import InvalidRequest, ModelNotInstalled, ModelUnavailable
from .base import Purpose, directory_digest, l2_normalize, loading, local_model_dir, params_digest
from .specs import MiniLMStaticSpec, Model2VecSpec
from .threads import force_offline

if TYPE_CHECKING:
    from model2vec import StaticModel

# Bump when the distillation recipe changes, so old cache entries are not reused.
DISTILL_RECIPE = 1


def cache_root() -> Path:
    """``$EMBEDSWITCH_CACHE``, or ``~/.cache/embedswitch`` when it is unset or empty."""
    configured = os.environ.get("EMBEDSWITCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "embedswitch"


class StaticEmbeddingModel:
    """A model2vec static model loaded from a local directory; vectors are L2-normalised float32.

    Queries and documents are embedded alike. A text none of whose tokens the model knows (the empty
    string, say) gets one fixed unit vector, so every row has norm 1. The fingerprint is the digest of
    the model's files (docs excluded), so the same files give the same fingerprint wherever they are
    loaded from. ``encode`` runs in parallel from several threads: model2vec sets its tokenizer's
    truncation on every call, so each thread encodes with its own copy of the model object and of
    the tokenizer (the embedding matrix is shared, never copied).
    """

    dim: int
    fingerprint: str
    static_model: StaticModel

    embeds_text = True
    normalized = True
    batches_queries = False

    def __init__(self, path: Path) -> None:
        force_offline()
        from model2vec import StaticModel

        self.path = path
        with loading("model2vec", path):
            self.static_model = StaticModel.from_pretrained(path, normalize=True, force_download=False)
        self.dim = int(self.static_model.dim)
        self.fingerprint = params_digest("model2vec", directory_digest(path), {"normalize": True})
        self._local = threading.local()
        self._fallback = np.full(self.dim, 1.0 / np.sqrt(self.dim), dtype=np.float32)

    @classmethod
    def from_spec(cls, spec: Model2VecSpec | MiniLMStaticSpec) -> StaticEmbeddingModel:
        """Load a saved model, or distil MiniLM first if this machine's cache does not hold it yet."""
        if isinstance(spec, MiniLMStaticSpec):
            return cls(distilled_minilm_dir(spec, cache_root()))
        return cls(local_model_dir(spec.path, "model2vec"))

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        """``float32 [len(texts), dim]`` with unit rows; ``purpose`` does not change the vectors."""
        batch = [_checked(text) for text in texts]
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        raw = self._thread_model().encode(batch, use_multiprocessing=False, show_progress_bar=False)
        vectors = l2_normalize(np.asarray(raw, dtype=np.float32))
        vectors[~vectors.any(axis=1)] = self._fallback
        return vectors

    def _thread_model(self) -> StaticModel:
        """This thread's shallow copy of the model, with a tokenizer of its own."""
        found: StaticModel | None = getattr(self._local, "model", None)
        if found is None:
            from tokenizers import Tokenizer

            found = copy.copy(self.static_model)
            found.tokenizer = Tokenizer.from_str(self.static_model.tokenizer.to_str())
            self._local.model = found
        return found

    def __repr__(self) -> str:
        return f"StaticEmbeddingModel(path={str(self.path)!r}, dim={self.dim})"


def distilled_minilm_dir(spec: MiniLMStaticSpec, root: Path) -> Path:
    """The directory under ``root/models`` holding MiniLM distilled with ``spec``'s parameters.

    Distils (about 20 s) only when it is missing. The name is a digest of the parameters, the MiniLM
    files and the model2vec version, so a change to any of them distils anew. A file lock keeps two
    processes from distilling at once, and the result is written to a temporary directory and renamed
    into place, so the directory either is complete or does not exist.
    """
    from .sentence_transformers import minilm_path

    source = local_model_dir(str(minilm_path()), "minilm")
    models = root / "models"
    target = models / distilled_name(spec, source)
    if target.is_dir():
        return target
    models.mkdir(parents=True, exist_ok=True)
    with _file_lock(models / f".{target.name}.lock"):
        if not target.is_dir():
            _distill_into(source, spec.pca_dims, target)
    return target


def distilled_name(spec: MiniLMStaticSpec, source: Path) -> str:
    """The cache entry's name: one per (parameters, source files, model2vec version, recipe)."""
    key = params_digest(
        "minilm-static",
        DISTILL_RECIPE,
        spec.pca_dims,
        directory_digest(source),
        importlib.metadata.version("model2vec"),
    )
    return f"minilm-static-{key[:16]}"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _distill_into(source: Path, pca_dims: int, target: Path) -> None:
    """Distil in a child process pinned to one thread, then rename the result into ``target``.

    The distilled weights are float16, so a last-bit difference in the float32 pass flips some of
    them, and the fingerprint (a digest of the files) with it. A fresh process with one BLAS and one
    torch thread makes the result depend on the machine only, not on what the calling process has
    set (thread pools, per-thread OpenMP settings), and it frees the transformer's memory at exit.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    one_thread = {
        name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TQDM_DISABLE")
    }
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        **one_thread,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
    }
    code = "import sys; from embedswitch.models.model2vec import distill_here; distill_here(*sys.argv[1:])"
    try:
        child = subprocess.run(
            [sys.executable, "-c", code, str(source), str(pca_dims), str(staging)],
            env=env,
            capture_output=True,
            text=True,
        )
        if child.returncode == _NO_DISTILL_EXTRA:
            raise ModelNotInstalled(
                f"minilm-static needs torch and model2vec's distill extra to build its cache "
                f"({child.stderr.strip()}); install them with pip install 'embedswitch[transformers]', "
                f"or copy a distilled model into {target} from a machine that has them",
                model="minilm-static",
                extra="transformers",
            )
        if child.returncode != 0:
            raise ModelUnavailable(
                f"distilling minilm-static failed: {child.stderr.strip()[-2000:]}", model="minilm-static"
            )
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


_NO_DISTILL_EXTRA = 3


def distill_here(source: str, pca_dims: str, staging: str) -> None:
    """The child process's side of ``_distill_into``: distil ``source`` and save it into ``staging``."""
    force_offline()
    try:
        import torch
        from model2vec.distill import distill
    except ImportError as exc:
        print(exc, file=sys.stderr)
        sys.exit(_NO_DISTILL_EXTRA)
    torch.set_num_threads(1)
    distill(model_name=source, pca_dims=int(pca_dims), device="cpu").save_pretrained(staging)


def _checked(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidRequest(f"texts to embed must be strings, got {type(text).__name__}")
    return text
