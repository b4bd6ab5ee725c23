"""``embedswitch versions add|list|show``: the versions of a collection and their backfill."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TextColumn
from rich.table import Table

from ..client import Client
from ..results import EventOut, Progress, VersionInfo
from ._common import (
    DEFAULT_URL,
    IndexOption,
    IndexType,
    JsonOption,
    ModelOption,
    ModelSpecOption,
    UrlOption,
    connect,
    console,
    duration,
    print_json,
    progress_bar,
    resolve_model,
    short_json,
    table,
    text,
    version_body,
)

app = typer.Typer(help="Add, list and inspect the versions of a collection.", no_args_is_help=True)

CollectionArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]
VersionArgument = Annotated[str, typer.Argument(help="Version name.", show_default=False)]

POLL_S = 0.25
RECENT_EVENTS = 10


def versions_table(versions: Sequence[VersionInfo], title: str | None = None) -> Table:
    """One row per version: name, model, dim, index, state, applied_seq, records, weight."""
    out = table("name", "model", "dim", "index", "state", "applied_seq", "records", "weight", title=title)
    for v in versions:
        out.add_row(
            text(v.name),
            text(v.model_label),
            text(v.dim),
            text(v.index.get("type", "auto")),
            text(v.state),
            text(v.applied_seq),
            text(v.records),
            text(v.weight),
        )
    return out


def progress_line(progress: Progress | None) -> str:
    """``done/total (pct%), rate records/s, eta`` of a backfill, or ``-`` when there is none."""
    if progress is None:
        return "-"
    pct = 100 * progress.done // max(1, progress.total)
    return (
        f"{progress.done}/{progress.total} ({pct}%), {progress.rate:,.0f} records/s, "
        f"eta {duration(progress.eta_s)}"
    )


@app.command("add")
def add(
    collection: CollectionArgument,
    name: VersionArgument,
    model: ModelOption = None,
    spec: ModelSpecOption = None,
    index: IndexOption = IndexType.auto,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the backfill until the version is ready.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Add a version; it backfills from the current records and gets no traffic until told."""
    out = Console(stderr=True) if as_json else console()
    with connect(url) as client:
        info = client.add_version(collection, version_body(name, resolve_model(model, spec), index))
        total = info.progress.total if info.progress else info.records
        out.print(
            text(
                f"added version {info.name!r} to {collection!r} (model {info.model_label}, dim {info.dim}); "
                f"backfilling {total} records"
            )
        )
        if wait:
            info = follow_backfill(client, collection, name, out)
            out.print(text(f"version {info.name!r} is ready: {info.records} records"))
    if as_json:
        print_json(info)


def follow_backfill(client: Client, collection: str, name: str, out: Console) -> VersionInfo:
    """Show the backfill of ``name`` as a live progress bar until its state is ``ready``."""
    rate = TextColumn("{task.fields[rate]}", style="cyan", markup=False)
    try:
        with progress_bar(out, rate) as bar:
            task = bar.add_task(f"backfilling {name}", total=None, rate="")
            while True:
                info = client.describe_version(collection, name)
                progress = info.progress
                if progress is not None:
                    detail = f"{progress.rate:,.0f} records/s, eta {duration(progress.eta_s)}"
                    total = max(progress.total, progress.done)
                    bar.update(task, completed=progress.done, total=total, rate=detail)
                if info.state == "ready":
                    total = int(bar.tasks[0].total or 0)
                    bar.update(task, completed=total, total=total, rate="done")
                    return info
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        out.print(text(f"stopped following; the backfill of {name!r} goes on in the server"))
        raise typer.Exit(130) from None


@app.command("list")
def list_(collection: CollectionArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """List the versions of a collection."""
    with connect(url) as client:
        versions = client.describe(collection).versions
    if as_json:
        print_json(versions)
        return
    console().print(versions_table(versions, title=f"versions of {collection}"))


@app.command("show")
def show(
    collection: CollectionArgument,
    name: VersionArgument,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Show one version: model, index, state, lag, backfill progress and its recent events."""
    with connect(url) as client:
        info = client.describe_version(collection, name)
        events = client.events(collection, name)[-RECENT_EVENTS:]
    if as_json:
        print_json(
            {"version": info.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in events]}
        )
        return
    out = console()
    out.print(details_table(info, title=f"{collection} / {name}"))
    out.print(events_table(events, title=f"recent events of {name}"))


def details_table(info: VersionInfo, title: str) -> Table:
    out = Table(title=title, show_header=False)
    out.add_column(style="bold")
    out.add_column()
    rows = [
        ("model", f"{info.model_label} {short_json(info.model, 200)}"),
        ("fingerprint", info.fingerprint[:16]),
        ("dim", info.dim),
        ("index", short_json(info.index, 200)),
        ("state", info.state),
        ("created_seq", info.created_seq),
        ("applied_seq", info.applied_seq),
        ("lag", info.lag),
        ("records", f"{info.records} {short_json(info.records_by_kind)}"),
        ("weight", info.weight),
        ("backfill", progress_line(info.progress)),
    ]
    for key, value in rows:
        out.add_row(key, text(value))
    return out


def events_table(events: Sequence[EventOut], title: str) -> Table:
    out = table("#", "at", "version", "event", "detail", title=title)
    for event in events:
        at = datetime.fromtimestamp(event.at).strftime("%Y-%m-%d %H:%M:%S")
        out.add_row(
            text(event.id),
            text(at),
            text(event.version or "-"),
            text(event.event),
            text(short_json(event.detail)),
        )
    return out
