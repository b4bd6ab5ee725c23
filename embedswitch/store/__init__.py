"""The store seam: records, change log and control state; ``open_store(uri, data_dir)`` picks the
backend (``sqlite``, the embedded default)."""

from .base import ControlStore, RecordStore, Store
from .registry import open_store

__all__ = ["ControlStore", "RecordStore", "Store", "open_store"]
