"""``embedswitch status``: one table with every version's state, traffic, lag and backfill."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..results import CollectionInfo, VersionInfo
from ._common import DEFAULT_URL, JsonOption, UrlOption, connect, console, duration, print_json, table, text


def status(
    collection: Annotated[str, typer.Argument(help="Collection name.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Show each version of a collection: model, state, weight, applied seq, lag, records, records
    its model rejected (quarantined), backfill."""
    with connect(url) as client:
        info = client.describe(collection)
    if as_json:
        print_json(info)
        return
    console().print(status_table(info))


def status_table(info: CollectionInfo) -> Table:
    caption = f"head seq {info.head_seq}; {info.records} records"
    out = table(
        "version",
        "model",
        "state",
        "weight",
        "applied_seq",
        "lag",
        "records",
        "quarantined",
        "backfill",
        title=f"status of {info.name}",
        caption=caption,
    )
    for v in info.versions:
        out.add_row(
            text(v.name),
            text(v.model_label),
            text(v.state),
            text(v.weight),
            text(v.applied_seq),
            text(v.lag),
            text(v.records),
            text(quarantine_cell(v)),
            text(backfill_cell(v)),
        )
    return out


def quarantine_cell(version: VersionInfo) -> str:
    """Records the model rejected: open ones, and ``(+N skipped)``; ``-`` for none."""
    if not (version.quarantined or version.quarantine_skipped):
        return "-"
    skipped = f" (+{version.quarantine_skipped} skipped)" if version.quarantine_skipped else ""
    return f"{version.quarantined}{skipped}"


def backfill_cell(version: VersionInfo) -> str:
    """``percent, rate/s, eta`` of a running backfill, ``100%`` once ready, ``-`` without one."""
    progress = version.progress
    if progress is None:
        return "-"
    if version.state == "ready":
        return "100%"
    percent = 100 * progress.done // max(1, progress.total)
    return f"{percent}%, {progress.rate:,.0f}/s, eta {duration(progress.eta_s)}"
