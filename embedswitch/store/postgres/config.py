"""Where the PostgreSQL store connects, and its own settings, from one URI.

``postgresql://user:password@host:5432/db?sslmode=require&lease_ttl_s=5`` (``postgres://`` and
``postgresql+psycopg://`` name the same backend). Query parameters that libpq knows (``sslmode``,
``application_name``: "embedswitch-<pid>" unless given, ``host`` for a socket dir,
``connect_timeout``: 10 s unless given, ...) go to
the connection; these are embedswitch's, taken out before connecting:

- ``lease_ttl_s`` (default 10; give every process sharing the database the same): a lease holder
  that stops renewing its lease for this long (a paused process) loses it to the next process that
  asks; renewals run every third of it. The server ends a connection of the store left in an open
  transaction for twice as long (at least 10 s), so a paused process cannot hold up a takeover;
- ``pool_max`` (default 10): the most connections one store opens for reads and writes, and as
  many again for index searches (plus one for notifications and one, once it leases, for its
  leases).

Any other parameter is an error that names these, rather than a setting silently ignored.
"""

from __future__ import annotations

import os
from functools import cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..._errors import InvalidRequest

SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10
"""libpq's ``connect_timeout`` when the URI sets none (libpq alone would wait as long as TCP does)."""


class PostgresConfig(BaseModel):
    """A PostgreSQL store: the libpq URI it connects to and embedswitch's settings for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conninfo: str
    lease_ttl_s: float = Field(10.0, gt=0, le=3600)
    pool_max: int = Field(10, ge=1, le=1000)

    @property
    def idle_in_transaction_s(self) -> float:
        """How long the server lets a connection sit in an open transaction: a paused process
        must not hold the lease rows it locked (and so a takeover) for longer than this."""
        return max(10.0, 2 * self.lease_ttl_s)

    @classmethod
    def from_uri(cls, uri: str) -> PostgresConfig:
        """Split ``uri`` into the connection's URI and embedswitch's parameters; ``InvalidRequest``
        for a parameter that is neither, or a value out of range."""
        parts = urlsplit(uri)
        if parts.scheme.split("+", 1)[0].lower() not in SCHEMES:
            raise InvalidRequest(
                f"not a PostgreSQL URI: {describe(uri)!r}; use postgresql://user@host:5432/db",
                store=parts.scheme,
            )
        params = parse_qsl(parts.query, keep_blank_values=True)
        keywords = libpq_keywords()
        ours = {key: value for key, value in params if key not in keywords}
        if "conninfo" in ours:  # a field of ours, but not one a URI may set
            ours["conninfo (a URI parameter)"] = ours.pop("conninfo")
        theirs = [(key, value) for key, value in params if key in keywords]
        given = {key for key, _ in theirs}
        if "connect_timeout" not in given:
            theirs.append(("connect_timeout", str(CONNECT_TIMEOUT_S)))
        if "application_name" not in given:  # pg_stat_activity tells the replicas apart
            theirs.append(("application_name", f"embedswitch-{os.getpid()}"))
        query = urlencode(theirs, safe="/")
        conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, query, parts.fragment))
        try:
            return cls.model_validate({**ours, "conninfo": conninfo})
        except ValidationError as exc:
            raise InvalidRequest(_explain(exc), store=describe(uri)) from None


def _explain(exc: ValidationError) -> str:
    own = ", ".join(name for name in PostgresConfig.model_fields if name != "conninfo")
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(
                f"unknown parameter {name!r}: neither a libpq connection parameter nor one of "
                f"embedswitch's ({own})"
            )
        else:
            problems.append(f"parameter {name!r}: {error['msg']}")
    return "invalid PostgreSQL store URI: " + "; ".join(problems)


@cache
def libpq_keywords() -> frozenset[str]:
    """The connection parameters libpq accepts (``sslmode``, ``connect_timeout``, ...)."""
    from psycopg import pq

    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def describe(uri: str) -> str:
    """``uri`` without its password (in the address or as a parameter), for messages and logs."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    params = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(params, safe="/*")))
