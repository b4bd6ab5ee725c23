"""A stored version this process could not bring up, kept so the others still serve."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ModelUnavailable
from .results import VersionInfo
from .store.base import VersionRow

FAILED = "failed"  # reported for a ``FailedVersion``, never stored


@dataclass(frozen=True)
class FailedVersion:
    """A stored version this process could not bring up: its stored spec no longer validates, or
    its model is not allowed here (``ModelNotAllowed``) or not found (``UnknownModel``).

    It keeps its row, so the change log is kept from its saved position on, and its files, so it
    picks up where it stopped once the cause is fixed and the server restarted. Meanwhile it serves
    nothing: a request pinned or routed to it gets ``unavailable()``, naming the reason.
    """

    row: VersionRow
    reason: str
    root: Path

    @property
    def name(self) -> str:
        return self.row.name

    def unavailable(self) -> ModelUnavailable:
        return ModelUnavailable(
            f"version {self.name!r} of {self.row.collection!r} could not be loaded when the server "
            f"started: {self.reason}. Fix that and restart the server, or retire the version",
            collection=self.row.collection,
            version=self.name,
        )

    def info(self, weight: int, head_seq: int) -> VersionInfo:
        """What ``GET .../versions/{v}`` says of it: ``state`` failed, the reason in ``error``, and
        what its row knows (nothing of its indexes, which are not open)."""
        spec = self.row.spec
        model: dict[str, Any] = spec["model"] if isinstance(spec.get("model"), dict) else {}
        return VersionInfo(
            name=self.name,
            model=model,
            model_label=str(model.get("type", "unknown")),
            fingerprint="",
            dim=0,
            index=spec.get("index") or {},
            source=str(spec.get("source", "model")),
            state=FAILED,
            created_seq=self.row.created_seq,
            applied_seq=self.row.applied_seq,
            lag=max(0, head_seq - self.row.applied_seq),
            records=0,
            records_by_kind={},
            weight=weight,
            error=self.unavailable().message,
        )

    def destroy(self) -> None:
        """Delete its files (it is being retired)."""
        shutil.rmtree(self.root, ignore_errors=True)
