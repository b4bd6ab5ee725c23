"""``embedswitch quarantine list|retry|skip``: records a version's model rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from ..results import QuarantineAck, QuarantineInfo
from ._common import DEFAULT_URL, JsonOption, KindOption, UrlOption, connect, console, print_json, table, text

app = typer.Typer(help="List, retry or skip the records a version's model rejected.", no_args_is_help=True)

CollectionArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]
VersionArgument = Annotated[str, typer.Argument(help="Version name.", show_default=False)]
IdsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--id", help="A quarantined record's id (repeat for several); none: every one.", show_default=False
    ),
]


def _records(ids: list[str] | None, kind: str) -> list[dict[str, str]] | None:
    return None if not ids else [{"id": rid, "kind": kind} for rid in ids]


@app.command("list")
def list_(
    collection: CollectionArgument,
    version: VersionArgument,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """List the version's quarantined records with the model's error."""
    with connect(url) as client:
        info = client.quarantine(collection, version)
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(quarantine_table(info, title=f"quarantine of {collection} / {version}"))
    out.print(text(f"{info.open} open (holding the version back), {info.skipped} skipped"))


def quarantine_table(info: QuarantineInfo, title: str) -> Table:
    out = table("kind", "id", "seq", "state", "since", "error", title=title)
    for record in info.records:
        since = datetime.fromtimestamp(record.at).strftime("%Y-%m-%d %H:%M:%S")
        state = "skipped" if record.skipped else "open"
        out.add_row(
            text(record.kind), text(record.id), text(record.seq), text(state), text(since), text(record.error)
        )
    return out


@app.command("retry")
def retry(
    collection: CollectionArgument,
    version: VersionArgument,
    ids: IdsOption = None,
    kind: KindOption = "doc",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Embed quarantined records again from their stored text (after fixing the model or endpoint)."""
    with connect(url) as client:
        ack = client.retry_quarantined(collection, version, _records(ids, kind))
    _report(
        ack,
        f"{ack.changed} embedded, {ack.rejected} rejected again, {ack.pending} left to newer writes",
        as_json,
    )


@app.command("skip")
def skip(
    collection: CollectionArgument,
    version: VersionArgument,
    ids: IdsOption = None,
    kind: KindOption = "doc",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Let quarantined records stop holding the version back; they keep no vector in it."""
    with connect(url) as client:
        ack = client.skip_quarantined(collection, version, _records(ids, kind))
    _report(ack, f"{ack.changed} skipped", as_json)


def _report(ack: QuarantineAck, done: str, as_json: bool) -> None:
    if as_json:
        print_json(ack)
        return
    console().print(text(f"{ack.version}: {done}; {ack.open} open, {ack.skipped} skipped in quarantine"))
