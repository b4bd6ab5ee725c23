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
    """Show each version of a collection: model, state, weight, applied seq, lag, records, backfill."""
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
        "backfill",
        "rate / eta",
        title=f"status of {info.name}",
        caption=caption,
    )
    for v in info.versions:
        percent, rate = backfill_cells(v)
        out.add_row(
            text(v.name),
            text(v.model_label),
            text(v.state),
            text(v.weight),
            text(v.applied_seq),
            text(v.lag),
            text(v.records),
            text(percent),
            text(rate),
        )
    return out


def backfill_cells(version: VersionInfo) -> tuple[str, str]:
    """``(percent done, "rate/s, eta")`` of a version's backfill; dashes when it has none."""
    progress = version.progress
    if progress is None:
        return "-", "-"
    if version.state == "ready":
        return "100%", "-"
    percent = f"{100 * progress.done // max(1, progress.total)}%"
    return percent, f"{progress.rate:,.0f}/s, eta {duration(progress.eta_s)}"
