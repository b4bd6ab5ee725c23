"""Backfill: embedding the records that existed when a version was created, while the stream goes on.

``base`` is the seam (sink, embed step, executor), ``runner`` the resumable pipeline that drives
it, ``throttle`` its pacing (records/s, tokens/min). The executors: ``local`` on threads of this
process, ``process`` on worker processes of this machine, ``ray`` on Ray actors (``pool`` is what
the last two share); ``executors`` picks one by name.
"""

from .base import BackfillConfig, EmbedExecutor, EmbedStep, ExecutorName, VectorSink
from .executors import open_executor, resolve
from .local import ThreadExecutor
from .process import ProcessExecutor
from .ray import RayExecutor
from .runner import Backfill

__all__ = [
    "Backfill",
    "BackfillConfig",
    "EmbedExecutor",
    "EmbedStep",
    "ExecutorName",
    "ProcessExecutor",
    "RayExecutor",
    "ThreadExecutor",
    "VectorSink",
    "open_executor",
    "resolve",
]
