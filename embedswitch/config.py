"""``EngineConfig``: the engine's tuning knobs, from code or ``EMBEDSWITCH_<FIELD>`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from .specs import parse


class EngineConfig(BaseModel):
    """Tuning knobs; the defaults suit the embedded default on a small machine."""

    model_config = ConfigDict(extra="forbid")

    min_seq_timeout_s: float = Field(5.0, ge=0, description="How long search waits for min_seq")
    apply_batch: int = Field(256, ge=1, description="Log entries an applier embeds per step")
    checkpoint_interval_s: float = Field(2.0, gt=0, description="How often indexes are made durable")
    backfill_batch: int = Field(256, ge=1)
    encode_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Threads that embed in parallel, per applier step and per backfill",
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="Intra-op threads per torch forward pass; 1 lets backfill encoders and queries "
        "run side by side on separate cores (None: torch's default)",
    )
    query_batch_wait_ms: float = Field(
        1.5,
        ge=0,
        description="How long a query waits for concurrent queries to share one encode call, at most, "
        "for models that gain from it (transformers); 0: off. A query on an idle model never waits",
    )
    query_batch_max: int = Field(32, ge=1, description="Queries embedded in one shared call, at most")
    inline_quick_requests: bool = Field(
        True,
        description="Run searches and recommendations that are quick (models that don't batch "
        "queries, such as static or hashing ones, over an embedded store) on the HTTP server's event "
        "loop instead of a worker thread; turn off when exact indexes are large (a long search "
        "there holds up the other requests)",
    )
    blas_threads: int | None = Field(
        1,
        ge=1,
        description="BLAS threads per call (numpy's matrix products, e.g. the exact index); 1 lets "
        "concurrent requests use the cores side by side instead of fighting over BLAS's pool",
    )
    backfill_max_rate: float | None = Field(None, gt=0, description="Records/s cap per backfill")
    backfill_max_tokens_per_min: float | None = Field(
        None,
        gt=0,
        description="Tokens/min cap per backfill, for a hosted model's quota; tokens are estimated "
        "conservatively (UTF-8 bytes, models/tokens.py), so the real count stays below the cap",
    )
    backfill_yield_max_wait_s: float = Field(
        0.05, ge=0, description="How long a backfill batch waits for in-flight queries to finish"
    )
    maintenance_interval_s: float = Field(
        10.0, gt=0, description="How often the change log and the events are pruned and the WAL truncated"
    )
    events_keep: int = Field(10_000, ge=1, description="Events kept per collection, at most (the newest)")
    events_retention_days: float = Field(90.0, gt=0, description="How long an event is kept, at most")
    query_log_size: int = Field(
        0, ge=0, description="Searches kept per collection for evaluating candidates on real traffic; 0: off"
    )
    query_log_retention_s: float = Field(
        7 * 86_400.0, gt=0, description="How long a logged search is kept, at most"
    )
    experiment_retention_days: float = Field(
        30.0, gt=0, description="How long request assignments, feedback and shadow observations are kept"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineConfig:
        """Defaults overridden by ``EMBEDSWITCH_<FIELD>`` variables, e.g. EMBEDSWITCH_BACKFILL_MAX_RATE."""
        env = os.environ if environ is None else environ
        values = {
            name: env[f"EMBEDSWITCH_{name.upper()}"]
            for name in cls.model_fields
            if f"EMBEDSWITCH_{name.upper()}" in env
        }
        return parse(cls, values)
