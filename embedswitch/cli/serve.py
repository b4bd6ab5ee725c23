"""``embedswitch serve``: the HTTP API over the embedded engine in a data dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .._errors import InvalidRequest
from ..engine import Engine
from ..http.auth import Gate
from ..http.settings import LOOPBACK_HOSTS, HttpConfig
from ._common import reported

DataOption = Annotated[
    Path,
    typer.Option("--data", help="Data dir (created if missing); one process serves it.", file_okay=False),
]
HostOption = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="uvicorn log level.")]


InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="Serve a non-loopback address without API keys: anyone who can reach it may do anything.",
    ),
]


def serve(
    data: DataOption,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    log_level: LogLevelOption = "info",
    insecure: InsecureOption = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) over the engine in DATA."""
    with reported():
        config = http_config(host, insecure)
        engine = Engine.open(data)
    run_server(engine, host, port, log_level, config)


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def http_config(host: str, insecure: bool) -> HttpConfig:
    """The server's HTTP settings for serving ``host``: keys are required off loopback (unless
    ``insecure``), and the served host is one the Host header may name."""
    config = HttpConfig.from_env()
    gate = Gate(config, {})  # parses the keys: a malformed entry fails here, before anything opens
    if host not in LOOPBACK_HOSTS and not gate.keys and not insecure:
        raise InvalidRequest(
            f"refusing to serve {host!r} without API keys: set EMBEDSWITCH_API_KEYS (role:key,...) or "
            "EMBEDSWITCH_API_KEYS_FILE, serve 127.0.0.1, or pass --insecure to let anyone who can reach "
            "it do anything"
        )
    if "EMBEDSWITCH_ALLOWED_HOSTS" not in os.environ:
        extra = ["*"] if host in WILDCARD_HOSTS else [host]
        config = config.model_copy(update={"allowed_hosts": [*config.allowed_hosts, *extra]})
    return config


def run_server(engine: Engine, host: str, port: int, log_level: str, config: HttpConfig) -> None:
    """Serve ``engine`` with uvicorn until interrupted; the app closes the engine on shutdown."""
    import uvicorn

    from ..http.app import create_app

    uvicorn.run(create_app(engine, config=config), host=host, port=port, log_level=log_level)
