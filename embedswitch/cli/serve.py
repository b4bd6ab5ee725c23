"""``embedswitch serve``: the HTTP API over the embedded engine in a data dir.

Its settings (``embedswitch/settings.py``) come from flags, ``EMBEDSWITCH_<NAME>`` variables and a
TOML file, in that order of precedence. On SIGTERM (or Ctrl-C) the server stops accepting
connections, lets the requests in flight finish (``drain_timeout_s``), closes the engine (buffered
logs written, every version checkpointed) and exits; past ``shutdown_timeout_s`` it exits at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from .._errors import InvalidRequest
from ..engine import Engine
from ..http.auth import Gate
from ..http.logs import configure_logging
from ..http.settings import LOOPBACK_HOSTS, HttpConfig
from ..index.access import key_variable
from ..models import OpenAISpec
from ..settings import LoadedSettings, ServerSettings, load_settings, parse_assignments, unknown_variables
from ._common import reported

log = logging.getLogger("embedswitch")

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Data dir (created if missing); one process serves it.", file_okay=False),
]
HostOption = Annotated[str | None, typer.Option("--host", help="Interface to listen on (default 127.0.0.1).")]
PortOption = Annotated[
    int | None, typer.Option("--port", min=1, max=65535, help="Port to listen on (default 8000).")
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Store backend URI: sqlite (default) or postgresql://user@host:5432/db."),
]
LogFormatOption = Annotated[str | None, typer.Option("--log-format", help="plain or json (default plain).")]
LogLevelOption = Annotated[
    str | None, typer.Option("--log-level", help="debug, info, warning, error (default info).")
]
InsecureOption = Annotated[
    bool | None,
    typer.Option(
        "--insecure",
        help="Serve a non-loopback address without API keys: anyone who can reach it may do anything.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file (default $EMBEDSWITCH_CONFIG).", dir_okay=False),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="NAME=VALUE for any setting (`embedswitch config` lists them); repeatable."),
]


@dataclass(frozen=True)
class Flags:
    """What the command line says about the settings (None: not given)."""

    data: Path | None = None
    host: str | None = None
    port: int | None = None
    store: str | None = None
    log_format: str | None = None
    log_level: str | None = None
    insecure: bool | None = None
    assignments: tuple[str, ...] = ()
    config: Path | None = None

    def load(self) -> LoadedSettings:
        """The settings: these flags over the environment over the file over the defaults."""
        named = {
            "data": self.data,
            "host": self.host,
            "port": self.port,
            "store": self.store,
            "log_format": self.log_format,
            "log_level": self.log_level,
            "insecure": self.insecure,
        }
        values = parse_assignments(self.assignments)
        values.update({name: value for name, value in named.items() if value is not None})
        return load_settings(values, self.config)


def serve(
    data: DataOption = None,
    host: HostOption = None,
    port: PortOption = None,
    store: StoreOption = None,
    log_format: LogFormatOption = None,
    log_level: LogLevelOption = None,
    insecure: InsecureOption = None,
    config: ConfigOption = None,
    assignments: SetOption = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) over the engine in the data dir."""
    flags = Flags(data, host, port, store, log_format, log_level, insecure, tuple(assignments or ()), config)
    loaded, http, engine = start(flags)
    run_server(engine, loaded.settings, http)


def start(flags: Flags) -> tuple[LoadedSettings, HttpConfig, Engine]:
    """The settings and HTTP config to serve with, and the engine they open (a bad setting is
    reported as every CLI error is, before anything opens)."""
    with reported():
        loaded, http = prepare(flags)
        return loaded, http, open_engine(loaded)


def prepare(flags: Flags) -> tuple[LoadedSettings, HttpConfig]:
    """The settings and HTTP config to serve with, checked, then logging configured; nothing is
    opened yet."""
    loaded = flags.load()
    settings = loaded.settings
    if settings.data is None:
        raise InvalidRequest('name the data dir: --data DIR, EMBEDSWITCH_DATA or data = "DIR" in --config')
    http = http_config(loaded)
    configure_logging(settings.log_format, settings.log_level)
    return loaded, http


def open_engine(loaded: LoadedSettings) -> Engine:
    """The engine of the settings' data dir; then warns about unknown ``EMBEDSWITCH_`` variables
    (those the versions' models name as key variables are known)."""
    settings = loaded.settings
    assert settings.data is not None
    engine = Engine.open(settings.data, settings.engine_config(), settings.store)
    for warning in unknown_variables(os.environ, model_key_variables(engine)):
        log.warning(warning)
    return engine


def model_key_variables(engine: Engine) -> set[str]:
    """The environment variables that the versions' remote models read their API keys from, and
    their engine indexes their servers' keys."""
    versions = [v for target in engine.list_collection_runtimes() for v in list(target.versions.values())]
    models = {v.spec.model.api_key_env for v in versions if isinstance(v.spec.model, OpenAISpec)}
    indexes = {key_variable(v.spec.index) for v in versions}
    return {name for name in models | indexes if name}


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def http_config(loaded: LoadedSettings) -> HttpConfig:
    """The server's HTTP settings: keys are required off loopback (unless ``insecure``), and the
    served host is one the Host header may name (unless ``allowed_hosts`` was set)."""
    settings = loaded.settings
    config = settings.http_config()
    gate = Gate(config, {})  # parses the keys: a malformed entry fails here, before anything opens
    host = settings.host
    if host not in LOOPBACK_HOSTS and not gate.keys and not settings.insecure:
        raise InvalidRequest(
            f"refusing to serve {host!r} without API keys: set EMBEDSWITCH_API_KEYS (role:key,...) or "
            "EMBEDSWITCH_API_KEYS_FILE, serve 127.0.0.1, or pass --insecure to let anyone who can reach "
            "it do anything"
        )
    if loaded.sources["allowed_hosts"] == "default":
        extra = ["*"] if host in WILDCARD_HOSTS else [host]
        config = config.model_copy(update={"allowed_hosts": [*config.allowed_hosts, *extra]})
    return config


class _Server(uvicorn.Server):
    """uvicorn's server (which drains requests in flight on SIGTERM), with a deadline: from the
    first signal, the process exits within ``shutdown_timeout_s`` whatever is still running."""

    def __init__(self, config: uvicorn.Config, shutdown_timeout_s: float) -> None:
        super().__init__(config)
        self._shutdown_timeout_s = shutdown_timeout_s
        self._deadline: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._deadline is None:
            self._deadline = threading.Thread(target=self._exit_by_deadline, name="shutdown", daemon=True)
            self._deadline.start()
        super().handle_exit(sig, frame)

    def _exit_by_deadline(self) -> None:
        timeout = self._shutdown_timeout_s
        drain = self.config.timeout_graceful_shutdown
        log.info(
            "shutting down: no new connections, requests in flight get %g s, exit within %g s", drain, timeout
        )
        time.sleep(timeout)
        log.error(
            "shutdown did not finish within shutdown_timeout_s (%g s); exiting now. Nothing acknowledged "
            "is lost: the change log replays on the next start",
            timeout,
        )
        os._exit(1)


def run_server(engine: Engine, settings: ServerSettings, config: HttpConfig) -> None:
    """Serve ``engine`` until a signal; the app closes the engine on shutdown."""
    from ..http.app import create_app

    server_config = uvicorn.Config(
        create_app(engine, config=config),
        host=settings.host,
        port=settings.port,
        log_config=None,  # configure_logging has set up every logger
        access_log=False,  # RequestLog logs each request, with its id
        timeout_graceful_shutdown=settings.drain_timeout_s,
    )
    _Server(server_config, settings.shutdown_timeout_s).run()
