"""The HTTP server's own settings: keys, hosts, CORS, limits (the engine's are ``EngineConfig``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .._env import CommaSeparated

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class HttpConfig(BaseModel):
    """What the HTTP layer checks in front of the engine; ``embedswitch serve`` fills it from its
    settings (``embedswitch/settings.py``)."""

    model_config = ConfigDict(extra="forbid")

    api_keys: SecretStr | None = Field(
        None,
        description="Keys as role[@collection+collection]:key,... (roles read, write, admin); "
        "no keys and no key file: every request is allowed (loopback only, unless insecure)",
    )
    api_keys_file: Path | None = Field(
        None, description="A JSON file of keys, each kept as its sha256 (see `embedswitch key new`)"
    )
    metrics_need_key: bool = Field(True, description="Whether /metrics needs a read key when keys are set")
    allowed_hosts: CommaSeparated = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Host header values accepted (DNS rebinding guard); the serve address is added; "
        "'*' accepts any",
    )
    cors_origins: CommaSeparated = Field(
        default_factory=list, description="Origins allowed cross-site requests (CORS); empty: CORS off"
    )
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Largest request body (413 beyond)")
    rate_limit_per_s: float | None = Field(
        None, gt=0, description="Requests per second per key (or per client address without keys); unset: off"
    )
    rate_limit_burst: int = Field(
        50, ge=1, description="Requests a key may send at once before the rate applies"
    )
    max_concurrent_heavy: int = Field(
        2, ge=1, description="Evaluate, train and candidate evaluations running at once; more get 503"
    )
