"""Choosing a backfill's executor by name: ``threads``, ``process``, ``ray`` or ``auto``."""

from __future__ import annotations

from ..models import ModelSpec
from .base import BackfillConfig, EmbedExecutor, ExecutorName
from .local import ThreadExecutor
from .process import ProcessExecutor
from .ray import RayExecutor

PORTABLE_MODELS = frozenset(
    {"hashing", "minilm", "minilm-static", "sentence-transformers", "model2vec", "openai"}
)
"""Model types whose vectors follow from the spec alone, so a worker elsewhere can embed for them.
Any other type (one that embeds no text, wraps the version's own vectors, or is fitted on the
collection) embeds on threads of the serving process, whatever the setting says."""


def resolve(name: ExecutorName, model: ModelSpec) -> ExecutorName:
    """``name``, with ``auto`` made ``process`` for a model on a GPU device, else ``threads``;
    ``threads`` for a model that is not in ``PORTABLE_MODELS``."""
    if model.type not in PORTABLE_MODELS:
        return "threads"
    if name != "auto":
        return name
    device = str(getattr(model, "device", "cpu"))
    return "process" if device.startswith(("cuda", "mps", "xpu")) else "threads"


def open_executor(name: ExecutorName, config: BackfillConfig, model: ModelSpec, label: str) -> EmbedExecutor:
    """The executor ``name`` (``resolve``d for ``model``) with the sizes and priority of ``config``;
    its workers start on the first page."""
    chosen = resolve(name, model)
    if chosen == "process":
        return ProcessExecutor(
            config.workers,
            config.activity,
            config.yield_max_wait_s,
            config.nice,
            config.torch_threads,
            label,
            config.idle,
        )
    if chosen == "ray":
        return RayExecutor(
            config.workers,
            config.activity,
            config.yield_max_wait_s,
            config.nice,
            config.torch_threads,
            config.ray_address,
            label,
            config.idle,
        )
    return ThreadExecutor(
        config.workers, config.activity, config.yield_max_wait_s, config.nice, label, config.idle
    )
