"""The PostgreSQL store's tables, built by numbered migrations recorded in the database.

``migrate`` runs at every open: under a transaction-scoped advisory lock (so processes opening
together take turns), it applies the migrations the database lacks, in order, each recorded in
``es_schema_migrations``, all in one transaction. A database migrated by a newer embedswitch (one
that knows more migrations) is refused rather than written with an older idea of its tables.

Every table is named ``es_*`` (other parts of embedswitch add their own ``es_*`` tables to the same
database). Keys and names are compared byte by byte (``COLLATE "C"``), so records page, and names
sort, in the same order as in the embedded store, whatever the database's locale.
"""

from __future__ import annotations

from typing import Any

from ..._errors import InvalidRequest

MIGRATION_LOCK = 0x6573_7363_6865_6D61  # "esschema": the advisory lock key migrations run under

_C = 'COLLATE "C"'

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "records, change log, control state, leases",
        f"""
CREATE TABLE es_collections(
  name text {_C} PRIMARY KEY, head_seq bigint NOT NULL DEFAULT 0,
  created_at double precision NOT NULL);
CREATE TABLE es_records(
  collection text {_C} NOT NULL, kind text {_C} NOT NULL, id text {_C} NOT NULL,
  text text NOT NULL, fields text NOT NULL, seq bigint NOT NULL, vector bytea,
  PRIMARY KEY(collection, kind, id));
CREATE TABLE es_log(
  collection text {_C} NOT NULL, seq bigint NOT NULL, op text NOT NULL, kind text {_C} NOT NULL,
  id text {_C} NOT NULL, text text, vector bytea, PRIMARY KEY(collection, seq));
CREATE TABLE es_versions(
  collection text {_C} NOT NULL, name text {_C} NOT NULL, spec text NOT NULL, state text NOT NULL,
  created_seq bigint NOT NULL, applied_seq bigint NOT NULL, backfill text,
  created_at double precision NOT NULL, PRIMARY KEY(collection, name));
CREATE TABLE es_applied(
  collection text {_C} NOT NULL, version text {_C} NOT NULL, seq bigint NOT NULL,
  PRIMARY KEY(collection, version));
CREATE TABLE es_traffic(
  collection text {_C} NOT NULL, id bigint NOT NULL, weights text NOT NULL, reason text NOT NULL,
  created_at double precision NOT NULL, parent bigint, PRIMARY KEY(collection, id));
CREATE TABLE es_events(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, collection text {_C} NOT NULL,
  version text {_C}, event text NOT NULL, detail text NOT NULL, at double precision NOT NULL);
CREATE INDEX es_events_by_collection ON es_events(collection, id);
CREATE TABLE es_interactions(
  collection text {_C} NOT NULL, seq bigint NOT NULL, user_id text {_C} NOT NULL,
  item text {_C} NOT NULL, weight double precision NOT NULL, ts double precision NOT NULL,
  PRIMARY KEY(collection, seq));
CREATE INDEX es_interactions_by_user ON es_interactions(collection, user_id);
CREATE INDEX es_interactions_by_item ON es_interactions(collection, item);
CREATE TABLE es_rollouts(
  collection text {_C} NOT NULL, id bigint NOT NULL, spec text NOT NULL, state text NOT NULL,
  status text NOT NULL, created_at double precision NOT NULL,
  updated_at double precision NOT NULL, PRIMARY KEY(collection, id));
CREATE TABLE es_quarantine(
  collection text {_C} NOT NULL, version text {_C} NOT NULL, kind text {_C} NOT NULL,
  id text {_C} NOT NULL, seq bigint NOT NULL, error text NOT NULL, at double precision NOT NULL,
  skipped boolean NOT NULL DEFAULT false, PRIMARY KEY(collection, version, kind, id));
CREATE TABLE es_leases(
  name text {_C} PRIMARY KEY, epoch bigint NOT NULL, holder_pid integer NOT NULL,
  heartbeat_at timestamptz NOT NULL);
""",
    ),
    (
        2,
        "the seq ledgers of milvus indexes",
        f"""
CREATE TABLE es_ledger_seqs(
  collection text {_C} NOT NULL, version text {_C} NOT NULL, kind text {_C} NOT NULL,
  id text {_C} NOT NULL, seq bigint NOT NULL, live boolean NOT NULL, lsn bigint NOT NULL,
  prev_seq bigint, prev_live boolean, PRIMARY KEY(collection, version, kind, id));
CREATE INDEX es_ledger_seqs_by_lsn ON es_ledger_seqs(collection, version, kind, lsn);
CREATE TABLE es_ledger_positions(
  collection text {_C} NOT NULL, version text {_C} NOT NULL, kind text {_C} NOT NULL,
  written bigint NOT NULL DEFAULT 0, confirmed bigint NOT NULL DEFAULT 0,
  PRIMARY KEY(collection, version, kind));
""",
    ),
]
"""(number, what it adds, SQL), numbered from 1 without gaps; a release only ever appends."""

LATEST = MIGRATIONS[-1][0]


def migrate(conn: Any) -> list[int]:
    """Bring the database on ``conn`` (an autocommit psycopg connection) up to ``LATEST``; the
    numbers of the migrations applied now (none when it was up to date). ``InvalidRequest`` when
    the database was migrated further than this embedswitch knows."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS es_schema_migrations("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        (current,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM es_schema_migrations").fetchone()
        if current > LATEST:
            raise InvalidRequest(
                f"this database's embedswitch schema is at version {current}, newer than this "
                f"embedswitch knows (up to {LATEST}): a newer embedswitch migrated it. Upgrade "
                "embedswitch on this machine to open it",
                schema_version=current,
                known_version=LATEST,
            )
        applied = []
        for number, name, sql in MIGRATIONS:
            if number > current:
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO es_schema_migrations(version, name) VALUES (%s, %s)", (number, name)
                )
                applied.append(number)
        return applied
