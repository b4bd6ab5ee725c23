"""State changes: each one is stored as an event (``GET /events``) and logged once, here.

Every change of a collection's or version's state goes through ``record``: a version created,
backfilled, trained, its vectors committed, ready, failing, recovered or retired; a traffic change
(set, promote, rollback: the ``reason`` says which); a rollout step; an experiment setting. The log
line (logger ``embedswitch.events``) names the collection, version and event, and carries them
with the detail as fields of a JSON log line. Work that brings a state of its own (a quarantine,
say) calls ``record`` with its event name, and adds it to ``WARNING_EVENTS`` if it is bad news.

``Trouble`` is a background worker's error while it retries: the first failure records
``failing`` (logged with its traceback), repeats are logged at DEBUG only, and the first success
after a failure records ``recovered``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .store.base import ControlStore

log = logging.getLogger("embedswitch.events")

WARNING_EVENTS = frozenset({"failing", "quarantined"})
"""Events logged at WARNING; every other event is logged at INFO."""
MAX_ERROR_CHARS = 500


def record(
    store: ControlStore,
    collection: str,
    version: str | None,
    event: str,
    detail: dict[str, Any],
    exc_info: BaseException | None = None,
) -> None:
    """Store the event durably, then log it once."""
    store.add_event(collection, version, event, detail)
    where = collection if version is None else f"{collection}/{version}"
    log.log(
        logging.WARNING if event in WARNING_EVENTS else logging.INFO,
        "%s: %s %s",
        where,
        event,
        json.dumps(detail, sort_keys=True, default=str),
        exc_info=exc_info,
        extra={"event": event, "collection": collection, "version": version, "detail": detail},
    )


class Trouble:
    """The current error of one background worker of a version (None while it works)."""

    def __init__(self, store: ControlStore, collection: str, version: str, worker: str) -> None:
        self.error: str | None = None
        self._store = store
        self._collection = collection
        self._version = version
        self._worker = worker

    def failed(self, exc: BaseException) -> None:
        """The worker failed and will retry: recorded as ``failing`` when it starts failing."""
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        if self.error is None:
            self._record("failing", {"worker": self._worker, "error": error}, exc)
        else:
            log.debug("%s of %s/%s failed again: %s", self._worker, self._collection, self._version, error)
        self.error = error

    def cleared(self) -> None:
        """The worker succeeded: recorded as ``recovered`` if it was failing."""
        if self.error is not None:
            self.error = None
            self._record("recovered", {"worker": self._worker}, None)

    def _record(self, event: str, detail: dict[str, Any], exc: BaseException | None) -> None:
        try:
            record(self._store, self._collection, self._version, event, detail, exc)
        except Exception:  # the store may be what fails; the worker must keep retrying regardless
            log.exception("recording %s of %s/%s failed", event, self._collection, self._version)
