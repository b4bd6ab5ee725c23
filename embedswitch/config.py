"""``EngineConfig``: the engine's tuning knobs and what model specs may reach, from code or
``EMBEDSWITCH_<FIELD>`` variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .models import ModelAccess
from .models.access import KEY_ENV_PREFIX
from .models.specs import check_http_url
from .specs import parse

_KEY_ENV_PATTERN = r"^(\*|[A-Za-z_][A-Za-z0-9_]*\*?)$"


class EngineConfig(BaseModel):
    """Tuning knobs, and what model specs may reach (``model_*``, see ``models/access.py``); the
    defaults suit the embedded default on a small machine, and let specs read only variables named
    ``EMBEDSWITCH_KEY_*`` and load only models under the data dir's ``models/``. Lists may be given
    as one comma-separated string."""

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
    model_key_envs: list[str] = Field(
        default_factory=lambda: [f"{KEY_ENV_PREFIX}*"],
        description="Environment variables a model spec may name as api_key_env: names, or prefixes "
        "ending in *",
    )
    model_dirs: list[Path] | None = Field(
        None,
        description="Directories local model specs (path) may load from; unset: the data dir's models/",
    )
    model_urls: list[str] | None = Field(
        None, description="URL prefixes openai model specs may call; unset: any URL"
    )

    @field_validator("model_key_envs", "model_dirs", "model_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """A list may come as one comma-separated string (as ``EMBEDSWITCH_<FIELD>`` does)."""
        return (
            [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        )

    @field_validator("model_key_envs")
    @classmethod
    def _key_envs(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not re.match(_KEY_ENV_PATTERN, name)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a variable name or a prefix ending in *")
        return value

    @field_validator("model_urls")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        for url in value or []:
            check_http_url(url)
        return value

    def model_access(self, data_dir: Path) -> ModelAccess:
        """What model specs may reach in an engine on ``data_dir``."""
        dirs = self.model_dirs if self.model_dirs is not None else [data_dir / "models"]
        urls = None if self.model_urls is None else tuple(self.model_urls)
        return ModelAccess(tuple(self.model_key_envs), tuple(Path(d).expanduser() for d in dirs), urls)

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
