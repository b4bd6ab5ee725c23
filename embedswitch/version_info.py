"""What ``GET .../versions/{v}`` says of a version alive in this process: its model, index,
state, position, progress, quarantine and the memory and disk its indexes take."""

from __future__ import annotations

from .models import model_label, spec_to_dict
from .results import Progress, VersionInfo
from .version import Version


def describe(version: Version, weight: int, head_seq: int) -> VersionInfo:
    """``version``'s info, given its traffic ``weight`` and the collection's head."""
    name = version.name
    spec = version.spec
    by_kind = version.records_by_kind()
    usage = version.usage()
    progress = None
    training = version.training
    if training is not None and version.awaiting_vectors():
        progress = Progress(
            done=training.done,
            total=training.total,
            rate=round(training.rate, 2),
            eta_s=training.eta_s(),
            phase="loading" if training.phase == "loading" else "training",
        )
    elif version.backfill is not None:
        state = version.backfill.state
        progress = Progress(
            done=state.done,
            total=state.total,
            rate=round(version.backfill.rate, 1),
            eta_s=version.backfill.eta_s(),
        )
    return VersionInfo(
        name=name,
        model=spec_to_dict(spec.model),
        model_label=model_label(spec.model),
        fingerprint=version.model.fingerprint,
        dim=version.model.dim,
        index=spec.index.model_dump(mode="json"),
        source=spec.source,
        state=version.state,
        created_seq=version.row.created_seq,
        applied_seq=version.applied_seq,
        lag=max(0, head_seq - version.applied_seq),
        records=sum(by_kind.values()),
        records_by_kind=by_kind,
        weight=weight,
        progress=progress,
        error=version.problem,
        quarantined=version.quarantine.open_count(),
        quarantine_skipped=version.quarantine.skipped_count(),
        memory_bytes=sum(index.memory_bytes for index in usage.values()),
        disk_bytes=sum(index.disk_bytes for index in usage.values()) + version.own_disk_bytes(),
        indexes=usage,
    )
