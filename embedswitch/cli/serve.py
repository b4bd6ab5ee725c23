"""``embedswitch serve``: the HTTP API over the embedded engine in a data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..engine import Engine
from ._common import reported

DataOption = Annotated[
    Path,
    typer.Option("--data", help="Data dir (created if missing); one process serves it.", file_okay=False),
]
HostOption = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="uvicorn log level.")]


def serve(
    data: DataOption,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    log_level: LogLevelOption = "info",
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) over the engine in DATA."""
    with reported():
        engine = Engine.open(data)
    run_server(engine, host, port, log_level)


def run_server(engine: Engine, host: str, port: int, log_level: str) -> None:
    """Serve ``engine`` with uvicorn until interrupted; the app closes the engine on shutdown."""
    import uvicorn

    from ..http.app import create_app

    uvicorn.run(create_app(engine), host=host, port=port, log_level=log_level)
