"""``embedswitch versions add|list|show``: the versions of a collection and their backfill."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TextColumn
from rich.table import Table

from ..client import Client
from ..results import EventOut, VersionInfo
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


class Source(StrEnum):
    model = "model"
    vectors = "vectors"


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


PHASES = {
    "training": ("training", "iterations/s"),
    "loading": ("loading", "items"),
    "backfill": ("backfilling", "records/s"),
}


def progress_line(info: VersionInfo) -> str:
    """``[phase] done/total (pct%), rate, eta`` of a training or backfill, or ``-`` when there is none."""
    progress = info.progress
    if progress is None:
        return "-"
    pct = 100 * progress.done // max(1, progress.total)
    if info.state == "ready":
        return f"{progress.done}/{progress.total} ({pct}%), finished"
    verb, unit = PHASES[progress.phase]
    prefix = "" if progress.phase == "backfill" else f"{verb}: "
    return (
        f"{prefix}{progress.done}/{progress.total} ({pct}%), {progress.rate:,.1f} {unit}, "
        f"eta {duration(progress.eta_s)}"
    )


@app.command("add")
def add(
    collection: CollectionArgument,
    name: VersionArgument,
    model: ModelOption = None,
    spec: ModelSpecOption = None,
    index: IndexOption = IndexType.auto,
    source: Annotated[
        Source,
        typer.Option(
            help="'vectors': document vectors come from `versions load-vectors` (batch deployment); "
            "the model embeds queries, streamed records and records left without a vector."
        ),
    ] = Source.model,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the backfill until the version is ready.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Add a version; it backfills from the current records and gets no traffic until told."""
    out = Console(stderr=True) if as_json else console()
    with connect(url) as client:
        body = version_body(name, resolve_model(model, spec), index, source.value)
        info = client.add_version(collection, body)
        total = info.progress.total if info.progress else info.records
        if source is Source.vectors:
            out.print(
                text(
                    f"added version {info.name!r} to {collection!r} (model {info.model_label}, "
                    f"dim {info.dim}); load its vectors with "
                    f"`embedswitch versions load-vectors {collection} {name} FILE`"
                )
            )
            wait = False
        else:
            out.print(
                text(
                    f"added version {info.name!r} to {collection!r} (model {info.model_label}, "
                    f"dim {info.dim}); backfilling {total} records"
                )
            )
        if wait:
            info = follow_backfill(client, collection, name, out)
            out.print(text(f"version {info.name!r} is ready: {info.records} records"))
    if as_json:
        print_json(info)


def follow_backfill(client: Client, collection: str, name: str, out: Console) -> VersionInfo:
    """Show the training (if any) and backfill of ``name`` as a live progress bar until its state
    is ``ready``."""
    rate = TextColumn("{task.fields[rate]}", style="cyan", markup=False)
    try:
        with progress_bar(out, rate) as bar:
            task = bar.add_task(f"backfilling {name}", total=None, rate="")
            while True:
                info = client.describe_version(collection, name)
                progress = info.progress
                if progress is not None:
                    verb, unit = PHASES[progress.phase]
                    detail = f"{progress.rate:,.1f} {unit}, eta {duration(progress.eta_s)}"
                    if progress.phase == "loading":
                        detail = f"{progress.done:,} {unit}"
                    if info.error:
                        detail += f" (retrying after: {info.error})"
                    total = max(progress.total, progress.done)
                    bar.update(
                        task, description=f"{verb} {name}", completed=progress.done, total=total, rate=detail
                    )
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
        events = client.events(collection, name)[:RECENT_EVENTS]
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
        ("source", info.source),
        ("state", info.state),
        ("created_seq", info.created_seq),
        ("applied_seq", info.applied_seq),
        ("lag", info.lag),
        ("records", f"{info.records} {short_json(info.records_by_kind)}"),
        ("weight", info.weight),
        ("backfill", progress_line(info)),
        ("error", info.error or "-"),
        ("quarantined", f"{info.quarantined} open, {info.quarantine_skipped} skipped"),
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


def _vector_rows(path: Path) -> Iterator[dict[str, object]]:
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                yield {"id": str(row["id"]), "kind": row.get("kind", "doc"), "vector": row["vector"]}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise typer.BadParameter(
                    f"{path}:{number}: expected a JSON object with 'id' and 'vector' (and optional 'kind')"
                ) from None


@app.command("load-vectors")
def load_vectors(
    collection: CollectionArgument,
    name: VersionArgument,
    path: Annotated[Path, typer.Argument(help="JSONL, one {id, kind?, vector} per line.", exists=True)],
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per request.")] = 1_000,
    commit: Annotated[
        bool, typer.Option(help="Commit the load afterwards: the model fills the gaps, then ready.")
    ] = True,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the gap fill until ready.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Load precomputed document vectors into a version added with --source vectors."""
    out = console()
    loaded = written = 0
    with connect(url) as client, progress_bar(out) as bar:
        task = bar.add_task(f"loading vectors into {name}", total=None)
        rows: list[dict[str, object]] = []
        for row in _vector_rows(path):
            rows.append(row)
            if len(rows) == batch:
                ack = client.put_vectors(collection, name, rows)
                loaded, written, rows = loaded + ack.count, written + ack.written, []
                bar.update(task, completed=loaded)
        if rows:
            ack = client.put_vectors(collection, name, rows)
            loaded, written = loaded + ack.count, written + ack.written
            bar.update(task, completed=loaded, total=loaded)
    out.print(text(f"{loaded} vectors loaded, {written} written (the rest were older than streamed updates)"))
    if commit:
        with connect(url) as client:
            client.commit_vectors(collection, name)
            out.print(text(f"committed; {name!r} now embeds the records that got no vector"))
            if wait:
                info = follow_backfill(client, collection, name, out)
                out.print(text(f"version {info.name!r} is ready: {info.records} records"))
