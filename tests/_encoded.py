"""Document vectors of the sentence-transformers models (MiniLM), kept for the test session and on
disk, so the SciFact tests embed each document once, not once per test and per run.

Embedding all of SciFact with MiniLM costs ~400 CPU-seconds (most of the suite's time), and the
hybrid, simulation and rollout tests embed subsets of the same documents again. Inside
``EncodedCache.installed()``, ``SentenceTransformerModel.encode`` of documents answers from the
cache what it holds and embeds the rest with the real model; queries are always embedded live.
Everything around the model runs as usual (appliers, backfills, indexes, evaluation).

Entries are keyed by the model's fingerprint (its files and every parameter that changes vectors)
and the text's digest. A file from an earlier run is trusted only after a spot check: the first
texts a session finds in it (up to ``SPOT_CHECK``) are embedded live and must match, else the
whole file is dropped and every text embedded again (a change of the encode path that keeps the
fingerprint shows up there). ``pytest --cache-clear`` starts cold, as a fresh CI checkout does.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from embedswitch.models.base import Purpose
from embedswitch.models.sentence_transformers import SentenceTransformerModel

SPOT_CHECK = 8
"""Texts from a file of an earlier run embedded live before the file is trusted."""
ATOL = 1e-4
"""How far a live vector may be from the stored one (rows match within float rounding: the batch a
text is padded in changes the last bits only)."""


_Live = Callable[[list[str]], np.ndarray]
"""The real model's encode of documents."""


class EncodedCache:
    """Document vectors by (model fingerprint, text digest), saved under ``directory`` (None: kept
    for the session only)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._vectors: dict[tuple[str, str], np.ndarray] = {}
        self._unchecked: dict[str, set[str]] = {}  # per fingerprint: digests read from disk, unchecked
        self._loaded: set[str] = set()
        self._dirty: set[str] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def installed(self) -> Iterator[EncodedCache]:
        """Inside, every ``SentenceTransformerModel`` embeds documents through this cache."""
        real = SentenceTransformerModel.encode

        def encode(
            model: SentenceTransformerModel, texts: Sequence[str], purpose: Purpose = "document"
        ) -> np.ndarray:
            if purpose != "document" or not texts:
                return real(model, texts, purpose)
            return self._encode(model, list(texts), lambda some: real(model, some, "document"))

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(SentenceTransformerModel, "encode", encode)
            yield self

    def _encode(self, model: SentenceTransformerModel, texts: list[str], live: _Live) -> np.ndarray:
        fingerprint = model.fingerprint
        self._load(fingerprint)
        digests = [_digest(text) for text in texts]
        self._spot_check(fingerprint, texts, digests, live)
        with self._lock:
            missing = [i for i, d in enumerate(digests) if (fingerprint, d) not in self._vectors]
        if missing:
            fresh = live([texts[i] for i in missing])
            with self._lock:
                for row, i in enumerate(missing):
                    self._vectors[(fingerprint, digests[i])] = fresh[row]
                self._dirty.add(fingerprint)
        with self._lock:
            return np.stack([self._vectors[(fingerprint, d)] for d in digests])

    def _spot_check(self, fingerprint: str, texts: list[str], digests: list[str], live: _Live) -> None:
        with self._lock:
            unchecked = self._unchecked.get(fingerprint)
            if not unchecked:
                return
            sample = [i for i, d in enumerate(digests) if d in unchecked][:SPOT_CHECK]
            if not sample:
                return
            stored = np.stack([self._vectors[(fingerprint, digests[i])] for i in sample])
        fresh = live([texts[i] for i in sample])
        with self._lock:
            if self._unchecked.get(fingerprint) is not unchecked:
                return  # another thread checked meanwhile
            del self._unchecked[fingerprint]
            if not np.allclose(fresh, stored, atol=ATOL, rtol=0):
                for digest in unchecked:  # stale: embed everything again
                    self._vectors.pop((fingerprint, digest), None)
                self._dirty.add(fingerprint)

    def _load(self, fingerprint: str) -> None:
        with self._lock:
            if fingerprint in self._loaded:
                return
            self._loaded.add(fingerprint)
            path = self._path(fingerprint)
            if path is None or not path.is_file():
                return
            try:
                with np.load(path) as stored:
                    digests, vectors = [str(d) for d in stored["digests"]], stored["vectors"]
            except (OSError, ValueError, KeyError):
                return  # unreadable: embed again, and overwrite it
            for digest, vector in zip(digests, vectors, strict=True):
                self._vectors.setdefault((fingerprint, digest), vector)
            self._unchecked[fingerprint] = set(digests)

    def save(self) -> None:
        """Write the vectors of every model that got new ones (a file per model, replaced whole)."""
        with self._lock:
            for fingerprint in sorted(self._dirty):
                path = self._path(fingerprint)
                if path is None:
                    continue
                mine = [(d, v) for (fp, d), v in self._vectors.items() if fp == fingerprint]
                if not mine:
                    continue
                part = path.with_suffix(".part.npz")
                digests = np.array([d for d, _ in mine])
                np.savez(part, digests=digests, vectors=np.stack([v for _, v in mine]).astype(np.float32))
                part.replace(path)
            self._dirty.clear()

    def _path(self, fingerprint: str) -> Path | None:
        return self.directory / f"{fingerprint[:32]}.npz" if self.directory is not None else None


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
