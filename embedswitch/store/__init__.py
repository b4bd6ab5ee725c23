"""The store seam: records, change log and control state. ``sqlite`` is the embedded default."""

from .base import Store
from .sqlite import SqliteStore

__all__ = ["SqliteStore", "Store"]
