"""``EngineConfig``: the engine's tuning knobs and what model specs may reach (``embedswitch serve``
takes them from its settings)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._env import CommaSeparated
from .index.access import IndexAccess
from .models import ModelAccess
from .models.access import KEY_ENV_PREFIX
from .models.specs import check_http_url

_KEY_ENV_PATTERN = r"^(\*|[A-Za-z_][A-Za-z0-9_]*\*?)$"


class EngineConfig(BaseModel):
    """Tuning knobs, and what model specs may reach (``model_*``, see ``models/access.py``); the
    defaults suit the embedded default on a small machine, and let specs read only variables named
    ``EMBEDSWITCH_KEY_*`` and load only models under the data dir's ``models/``."""

    model_config = ConfigDict(extra="forbid")

    min_seq_timeout_s: float = Field(
        5.0, ge=0, description="How long a search's `min_seq` waits before a 503 `not_caught_up`"
    )
    apply_batch: int = Field(256, ge=1, description="Log entries an applier embeds per step")
    checkpoint_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often whole indexes are written out (the change log is replayed from the last one "
        "after a crash; backfill pages are durable on their own)",
    )
    backfill_batch: int = Field(256, ge=1, description="Records per backfill page")
    encode_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Threads that embed in parallel, per applier step and per backfill",
        json_schema_extra={"shown_default": "cores"},
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="Intra-op threads per torch call; 1 lets the parallel encoders and queries each run on "
        "their own core (null: torch's default)",
    )
    query_batch_wait_ms: float = Field(
        1.5,
        ge=0,
        description="How long a query may wait for concurrent queries to share one encode call "
        "(transformer and remote models; static and hashing models never batch); a query on an idle "
        "model is embedded at once; 0 turns batching off",
    )
    query_batch_max: int = Field(32, ge=1, description="Queries embedded in one shared call, at most")
    inline_quick_requests: bool = Field(
        True,
        description="Searches and recommendations whose models don't batch queries (static, hashing, "
        "ALS), over the embedded store and without `min_seq`, run on the server's event loop instead "
        "of a worker thread (the thread hop cost more than the search); turn it off when exact "
        "indexes are large, since a long search there holds up the other requests",
    )
    blas_threads: int | None = Field(
        1,
        ge=1,
        description="BLAS threads per call (numpy matrix products such as the exact index's); 1 lets "
        "concurrent requests run side by side on the cores (null: BLAS's default)",
    )
    backfill_max_rate: float | None = Field(
        None, gt=0, description="Records/s cap per backfill (the throttle); null: no cap"
    )
    backfill_max_tokens_per_min: float | None = Field(
        None,
        gt=0,
        description="Tokens/min cap per backfill, for a hosted model's quota; tokens are estimated "
        "conservatively (UTF-8 bytes, models/tokens.py), so the real count stays below the cap",
    )
    backfill_executor: Literal["auto", "threads", "process", "ray"] = Field(
        "auto",
        description="Where backfills embed: `threads` of the serving process, a `process` pool of "
        "`encode_workers` worker processes (no GIL shared with serving), or `ray` actors; `auto`: "
        "`process` for a model on a GPU device, else `threads`. A version spec's `executor` overrides it",
    )
    backfill_idle_priority: bool = Field(
        True,
        description="Backfill encoders (threads, worker processes, actors) run at Linux SCHED_IDLE, only on "
        "CPU time nothing else wants; false: at nice +10 only, so that a backfill on a host kept busy by "
        "other work still gets a share",
    )
    ray_address: str | None = Field(
        None,
        description="The Ray cluster of the `ray` executor (`ray://host:10001`, or `auto`); null: a local "
        "one, started by the first backfill that needs it",
    )
    backfill_yield_max_wait_s: float = Field(
        0.05, ge=0, description="How long a backfill page waits for in-flight queries before it runs anyway"
    )
    maintenance_interval_s: float = Field(
        10.0,
        gt=0,
        description="How often maintenance runs: the change log pruned below every version's saved "
        "position, events pruned, write-ahead logs truncated",
    )
    events_keep: int = Field(10_000, ge=1, description="Events kept per collection, at most (the newest)")
    events_retention_days: float = Field(90.0, gt=0, description="How long an event is kept, at most")
    query_log_size: int = Field(
        0,
        ge=0,
        description="Routed searches kept per collection for evaluating a candidate on live queries "
        "(see the query log below); 0: off",
    )
    query_log_retention_s: float = Field(
        7 * 86_400.0, gt=0, description="How long a logged search is kept, at most"
    )
    experiment_retention_days: float = Field(
        30.0, gt=0, description="How long request assignments, feedback and shadow observations are kept"
    )
    max_apply_lag: int | None = Field(
        100_000,
        ge=1,
        description="Backpressure: log entries a serving version may have left to apply; past it writes "
        "get 503 `overloaded` with Retry-After and change nothing (building versions don't count); "
        "null: no bound",
    )
    model_key_envs: CommaSeparated = Field(
        default_factory=lambda: [f"{KEY_ENV_PREFIX}*"],
        description="Environment variables a model spec may name as api_key_env: names, or prefixes "
        "ending in *",
    )
    model_dirs: CommaSeparated | None = Field(
        None,
        description="Directories local model specs (path) may load from; null: the data dir's models/",
    )
    model_urls: CommaSeparated | None = Field(
        None, description="URL prefixes openai model specs may call; null: any URL"
    )
    index_key_envs: CommaSeparated = Field(
        default_factory=lambda: [f"{KEY_ENV_PREFIX}*"],
        description="Environment variables an index spec may name as its engine server's key "
        "(qdrant api_key_env, milvus token_env): names, or prefixes ending in *",
    )
    index_urls: CommaSeparated | None = Field(
        None,
        description="URL prefixes of the engine servers index specs may use (qdrant url, milvus uri); "
        "null: any server",
    )

    @field_validator("model_key_envs", "index_key_envs")
    @classmethod
    def _key_envs(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not re.match(_KEY_ENV_PATTERN, name)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a variable name or a prefix ending in *")
        return value

    @field_validator("model_urls", "index_urls")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        for url in value or []:
            check_http_url(url)
        return value

    def model_access(self, data_dir: Path) -> ModelAccess:
        """What model specs may reach in an engine on ``data_dir``."""
        dirs = [Path(d) for d in self.model_dirs] if self.model_dirs is not None else [data_dir / "models"]
        urls = None if self.model_urls is None else tuple(self.model_urls)
        return ModelAccess(tuple(self.model_key_envs), tuple(d.expanduser() for d in dirs), urls)

    def index_access(self) -> IndexAccess:
        """What index specs may reach: engine servers, and the variables of their keys."""
        urls = None if self.index_urls is None else tuple(self.index_urls)
        return IndexAccess(tuple(self.index_key_envs), urls)
