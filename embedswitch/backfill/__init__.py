"""Backfill: embedding the records that existed when a version was created, while the stream goes on.

``base`` is the seam (sink, embed step, executor), ``runner`` the resumable pipeline that drives
it, ``throttle`` its pacing (records/s, tokens/min), ``local`` the executor on threads of this
process.
"""

from .base import BackfillConfig, EmbedExecutor, EmbedStep, VectorSink
from .local import ThreadExecutor
from .runner import Backfill

__all__ = ["Backfill", "BackfillConfig", "EmbedExecutor", "EmbedStep", "ThreadExecutor", "VectorSink"]
