"""``ServerSettings``: every option of ``embedswitch serve``, from flags, the environment or a file.

One pydantic-settings model composes the engine's knobs (``EngineConfig``), the HTTP layer's
(``HttpConfig``) and the server process's own (``ServeConfig``: data dir, address, store, logging,
shutdown), so a field added to any of them is at once a setting everywhere: ``--set NAME=VALUE``,
``EMBEDSWITCH_<NAME>``, ``NAME = value`` in the TOML file (``--config FILE`` or
``$EMBEDSWITCH_CONFIG``), ``embedswitch config`` and the table in docs/operations.md.

``load_settings`` merges the layers, flags over environment over file over defaults, and remembers where
each value came from. A setting the file does not know is an error; an ``EMBEDSWITCH_`` variable
that is no setting (nor one of ``OTHER_VARIABLES``) is only warned about (``unknown_variables``),
since an environment is often shared.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, TomlConfigSettingsSource

from ._env import NULL, PREFIX, env_values, variable
from ._errors import InvalidRequest
from .config import EngineConfig
from .http.settings import HttpConfig
from .models.access import KEY_ENV_PREFIX

Source = Literal["flag", "env", "file", "default"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
CONFIG_VARIABLE = PREFIX + "CONFIG"
OTHER_VARIABLES = {
    CONFIG_VARIABLE: "the settings file of `embedswitch serve` and `embedswitch config`",
    "EMBEDSWITCH_URL": "the server the CLI talks to",
    "EMBEDSWITCH_API_KEY": "the key the CLI and `Client` send",
    "EMBEDSWITCH_CACHE": "where distilled static models are cached (default ~/.cache/embedswitch)",
    "EMBEDSWITCH_SCIFACT": "where the benchmarks find SciFact",
    "EMBEDSWITCH_BENCH_DEVICE": "the device of the GPU backfill benchmark",
}
"""The ``EMBEDSWITCH_`` variables embedswitch reads that are not server settings."""


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class ServeConfig(BaseModel):
    """The server process's own settings."""

    model_config = ConfigDict(extra="forbid")

    data: Path | None = Field(None, description="Data dir (created if missing); one process serves it")
    host: str = Field("127.0.0.1", description="Interface to listen on")
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on")
    store: str = Field(
        "sqlite",
        description="The store: `sqlite` keeps it in the data dir, `sqlite:///path/to.db` elsewhere; "
        "`postgresql://user@host:5432/db` is one that several serving processes share",
    )
    insecure: bool = Field(
        False,
        description="Serve a non-loopback address without API keys: anyone who can reach it may do anything",
    )
    log_format: Annotated[Literal["plain", "json"], BeforeValidator(_lower)] = Field(
        "plain", description="`plain` lines, or one JSON object per line"
    )
    log_level: Annotated[LogLevel, BeforeValidator(_lower)] = Field(
        "info", description="Least severe level logged; `info` logs each request and state change"
    )
    drain_timeout_s: int = Field(
        15, ge=1, description="On SIGTERM, how many seconds requests in flight may take to finish"
    )
    shutdown_timeout_s: float = Field(
        25.0,
        gt=0,
        description="On SIGTERM, how long until the process has exited, at most: draining, then writing "
        "the buffered logs and checkpointing; past it the process exits at once (nothing acknowledged "
        "is lost: the change log replays on the next start)",
    )

    @model_validator(mode="after")
    def _drain_fits(self) -> ServeConfig:
        if self.drain_timeout_s >= self.shutdown_timeout_s:
            raise ValueError(
                f"drain_timeout_s ({self.drain_timeout_s}) must be less than shutdown_timeout_s "
                f"({self.shutdown_timeout_s:g}), to leave time for closing the engine"
            )
        return self


class ServerSettings(EngineConfig, HttpConfig, ServeConfig, BaseSettings):
    """Every setting of the server: its own, the HTTP layer's and the engine's, side by side (their
    names never collide, which a test checks)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        env_prefix=PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,
        env_parse_none_str=NULL,
    )

    def engine_config(self) -> EngineConfig:
        return EngineConfig.model_validate({name: getattr(self, name) for name in EngineConfig.model_fields})

    def http_config(self) -> HttpConfig:
        return HttpConfig.model_validate({name: getattr(self, name) for name in HttpConfig.model_fields})


@dataclass(frozen=True)
class LoadedSettings:
    """Settings with the source of each value, and the file read (if any)."""

    settings: ServerSettings
    sources: dict[str, Source]
    file: Path | None


def load_settings(flags: Mapping[str, object], file: Path | None = None) -> LoadedSettings:
    """Defaults, overridden by the settings file (``file``, else ``$EMBEDSWITCH_CONFIG``), then by
    ``EMBEDSWITCH_<NAME>`` variables, then by ``flags``. ``InvalidRequest`` names a bad value and
    where it came from."""
    path = file or (Path(os.environ[CONFIG_VARIABLE]) if os.environ.get(CONFIG_VARIABLE) else None)
    layers: list[tuple[Source, Mapping[str, object]]] = [
        ("file", read_file(path)),
        ("env", env_values(ServerSettings)),
        ("flag", flags),
    ]
    values: dict[str, object] = {}
    sources: dict[str, Source] = {}
    for source, found in layers:
        for name, value in found.items():
            values[name], sources[name] = value, source
    try:  # merged above, so that each value's source is known: validated as is, nothing read again
        settings = ServerSettings.model_validate(values)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc, sources, path)) from None
    return LoadedSettings(
        settings, {name: sources.get(name, "default") for name in ServerSettings.model_fields}, path
    )


def read_file(path: Path | None) -> dict[str, object]:
    """The settings in a TOML file of ``name = value`` lines; an unknown name is an error."""
    if path is None:
        return {}
    if not path.is_file():
        raise InvalidRequest(f"settings file {path} does not exist; fix --config or ${CONFIG_VARIABLE}")
    try:
        data = TomlConfigSettingsSource(ServerSettings, toml_file=path).toml_data
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"settings file {path} is not valid TOML: {exc}") from None
    for name in data:
        if name not in ServerSettings.model_fields:
            raise InvalidRequest(f"settings file {path}: {_unknown(name)}")
    return {name: None if value == NULL else value for name, value in data.items()}


def parse_assignments(pairs: Sequence[str]) -> dict[str, object]:
    """``--set NAME=VALUE`` flags as settings (``VALUE`` as in a variable: ``a,b`` lists, ``null``)."""
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep:
            raise InvalidRequest(f"--set {pair!r}: write NAME=VALUE, e.g. --set apply_batch=128")
        if name not in ServerSettings.model_fields:
            raise InvalidRequest(f"--set {pair!r}: {_unknown(name)}")
        values[name] = None if value == NULL else value
    return values


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(ServerSettings.model_fields), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown setting {name!r}{hint} (`embedswitch config` lists them all)"


def _describe(exc: ValidationError, sources: Mapping[str, Source], path: Path | None) -> str:
    parts = []
    for error in exc.errors()[:5]:
        name = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if not name:
            parts.append(message)
            continue
        source = sources.get(name, "default")
        where = {"env": variable(name), "file": str(path), "flag": "a flag"}.get(source, "the default")
        parts.append(f"setting {name} (from {where}): {message}")
    return "; ".join(parts)


def unknown_variables(environ: Mapping[str, str], also_known: Iterable[str] = ()) -> list[str]:
    """A warning for each ``EMBEDSWITCH_`` variable that is no setting, none of ``OTHER_VARIABLES``,
    not in ``also_known`` (the key variables that model specs name) and not under the default prefix
    of model API key variables (``EMBEDSWITCH_KEY_``), with the closest name."""
    known = {variable(name) for name in ServerSettings.model_fields} | set(OTHER_VARIABLES) | set(also_known)
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(PREFIX) and upper not in known and not upper.startswith(KEY_ENV_PREFIX):
            close = difflib.get_close_matches(upper, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"unknown environment variable {name} is ignored{hint}")
    return warnings


# -- showing settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingRow:
    name: str
    variable: str
    value: str
    source: Source


def rows(loaded: LoadedSettings) -> list[SettingRow]:
    """Every setting with its effective value (secrets masked) and where that value came from."""
    return [
        SettingRow(name, variable(name), shown(getattr(loaded.settings, name)), loaded.sources[name])
        for name in ServerSettings.model_fields
    ]


def shown(value: object) -> str:
    """A value as it would be written in a variable; a secret as ``***``."""
    if isinstance(value, SecretStr):
        return "***"
    if value is None:
        return NULL
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) and abs(value) < 1e15 else str(value)
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def shown_default(name: str) -> str:
    """The default of a setting; one that depends on the machine says so (``shown_default``)."""
    field = ServerSettings.model_fields[name]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown_default"), str):
        return str(extra["shown_default"])
    return shown(field.get_default(call_default_factory=True))


def reference_table() -> str:
    """The Markdown table of every setting that docs/operations.md carries (a test keeps it equal)."""
    lines = ["| setting | variable | default | meaning |", "|---|---|---|---|"]
    for name, field in ServerSettings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        default = f"`{shown_default(name)}`" if shown_default(name) else "empty"
        lines.append(f"| `{name}` | `{variable(name)}` | {default} | {meaning} |")
    return "\n".join(lines)
