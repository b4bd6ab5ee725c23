"""The store tests' real PostgreSQL: ``pg_server`` (one per session) and ``pg_uri`` (an empty
database per test), from ``tests/_postgres.py``."""

from _postgres import pg_server, pg_uri  # noqa: F401
