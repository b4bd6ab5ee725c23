"""Choosing the store: one URI (or short name) names the backend, imported only when used.

``sqlite`` (the default) keeps the store in the data dir; ``sqlite:///path/to.db`` names another
file. ``postgresql://user@host:5432/db`` (or ``postgres://``) is the store several processes share
(``embedswitch[postgres]``). A new backend is one module with a ``from_uri(uri, data_dir)`` class
method and one line in ``STORES``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .._errors import InvalidRequest
from .base import Store

STORES: dict[str, str] = {
    "sqlite": "embedswitch.store.sqlite:SqliteStore",
    "postgresql": "embedswitch.store.postgres:PostgresStore",
    "postgres": "embedswitch.store.postgres:PostgresStore",
}
"""URI scheme (or short name) -> ``module:class`` of its backend."""

EXTRAS: dict[str, str] = {"postgresql": "postgres", "postgres": "postgres"}
"""Backends that need an optional extra of embedswitch: scheme -> the extra."""


def scheme_of(uri: str) -> str:
    """The backend name of ``uri``: its scheme, or the whole of a short name."""
    return uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else uri.lower()


def open_store(uri: str, data_dir: Path) -> Store:
    """The store ``uri`` names; ``InvalidRequest`` naming the known backends for any other."""
    target = STORES.get(scheme_of(uri))
    if target is None:
        raise InvalidRequest(
            f"unknown store {uri.split('://', 1)[0]!r}; use one of: {', '.join(STORES)} "
            "(e.g. --store sqlite, the data dir's embedswitch.db)",
            store=uri.split("://", 1)[0],
        )
    module, _, name = target.partition(":")
    try:
        backend: Any = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get(scheme_of(uri))
        if extra is None:
            raise
        raise ModuleNotFoundError(
            f"the {scheme_of(uri)!r} store needs packages this installation lacks ({exc}); "
            f"install them with: pip install 'embedswitch[{extra}]'",
            name=exc.name,
        ) from exc
    store: Store = backend.from_uri(uri, data_dir)
    return store
