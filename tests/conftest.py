"""Shared fixtures: real engines in tmp dirs and real uvicorn servers on free ports."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from _browser import browser, watched  # noqa: F401 - fixtures: headless chromium, a watched page
from _encoded import EncodedCache
from _pg_replicas import pg_hosts  # noqa: F401 - fixture: two replicas' hosts on one database
from _postgres import pg_server, pg_uri  # noqa: F401 - fixtures: a real PostgreSQL, a database per test

from embedswitch import Client, Engine, EngineConfig
from embedswitch.http import create_app
from embedswitch.http.settings import HttpConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
_SCIFACT_MISSING = not (SCIFACT / "corpus.jsonl").is_file()
# Outside CI a missing SciFact skips the tests that read it; in CI (CI set) they run and fail loudly.
needs_scifact = pytest.mark.skipif(
    _SCIFACT_MISSING and not os.environ.get("CI"), reason=f"SciFact not found at {SCIFACT}"
)


def require_scifact() -> None:
    """For fixtures: skip like ``needs_scifact`` when SciFact is missing outside CI."""
    if _SCIFACT_MISSING and not os.environ.get("CI"):
        pytest.skip(f"SciFact not found at {SCIFACT}")


FAST = EngineConfig(checkpoint_interval_s=0.2, maintenance_interval_s=0.5, min_seq_timeout_s=10)


@pytest.fixture(scope="session")
def encoded(request: pytest.FixtureRequest) -> Iterator[EncodedCache]:
    """MiniLM document vectors shared by the SciFact tests, kept in pytest's cache dir between runs
    (``_encoded.py``); a test embeds through it inside ``encoded.installed()``."""
    cache = getattr(request.config, "cache", None)
    found = EncodedCache(cache.mkdir("encoded-documents") if cache is not None else None)
    yield found
    found.save()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine.open(tmp_path / "data", FAST)
    yield eng
    eng.close()


class ServerThread:
    """A real uvicorn server for one engine, in a thread of the test process."""

    def __init__(self, engine: Engine, config: HttpConfig | None = None) -> None:
        self.engine = engine
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(engine, close_engine=False, config=config),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def server(engine: Engine) -> Iterator[ServerThread]:
    with ServerThread(engine) as running:
        yield running


@pytest.fixture
def http(server: ServerThread) -> Iterator[httpx.Client]:
    """Raw HTTP against the ``server`` fixture."""
    with httpx.Client(base_url=server.url, timeout=30) as h:
        yield h


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


class ServerProcess:
    """``embedswitch serve`` in its own process, so tests can kill -9 it."""

    def __init__(
        self,
        data: Path,
        env: dict[str, str] | None = None,
        log_level: str = "warning",
        log: Path | None = None,
    ) -> None:
        """``log``: a file its log (stderr) goes to, instead of the test's stderr."""
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "EMBEDSWITCH_CHECKPOINT_INTERVAL_S": "0.3", **(env or {})}
        self.log_level = log_level
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "embedswitch.cli",
            "serve",
            "--data",
            str(self.data),
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
        ]
        if self.log is None:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO)
        else:
            with self.log.open("ab") as stderr:
                self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO, stderr=stderr)
        self.wait_healthy(timeout_s)
        return self

    def wait_healthy(self, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_cli_block(block: str, url: str, cwd: Path) -> list[str]:
    """Run each ``embedswitch ...`` line of a documented shell block against the server at ``url``
    (``#`` comments ignored), in ``cwd``; fails on the first line that exits non-zero. Returns each
    line's stdout."""
    env = {**os.environ, "EMBEDSWITCH_URL": url, "COLUMNS": "200"}
    outputs = []
    for line in block.splitlines():
        args = shlex.split(line, comments=True)
        if not args:
            continue
        assert args[0] == "embedswitch", f"not an embedswitch command: {line}"
        done = subprocess.run(
            [sys.executable, "-m", "embedswitch.cli", *args[1:]],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    return outputs
