"""The PostgreSQL store (``--store postgresql://user@host:5432/db``): the scale-out backend of the
store seam, shared by several processes. ``store.py`` is the entry; ``config.py`` lists the URI's
parameters."""

from .store import PostgresStore

__all__ = ["PostgresStore"]
