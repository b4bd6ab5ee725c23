"""``embedswitch ingest|get|delete``: the records of a collection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..demo import IngestReport, count_records, ingest_file
from ..specs import MAX_BATCH
from ._common import (
    DEFAULT_URL,
    JsonOption,
    KindOption,
    RateColumn,
    UrlOption,
    connect,
    console,
    print_json,
    progress_bar,
    short_json,
    text,
)

CollectionArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]
IdArgument = Annotated[str, typer.Argument(help="Record id.", show_default=False)]


def ingest(
    collection: CollectionArgument,
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL file: {id, text, kind?, fields?} per line, or a BEIR corpus.jsonl.",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    batch: Annotated[int, typer.Option("--batch", min=1, max=MAX_BATCH, help="Records per request.")] = 256,
    kind: KindOption = "doc",
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Upsert every record of a JSONL file. Re-running it only writes the records that changed."""
    out = console()
    with connect(url) as client:
        head = client.describe(collection).head_seq
        total = count_records(file)
        with progress_bar(out, RateColumn()) as bar:
            task = bar.add_task(f"ingesting {file.name}", total=total)

            def advance(report: IngestReport) -> None:
                bar.update(task, completed=report.records)

            report = ingest_file(client, collection, file, batch, kind, on_batch=advance)
    seq = head if report.seq is None else report.seq
    out.print(text(f"{report.records} records, {report.changed} changed; seq {seq}"))


def get(
    collection: CollectionArgument,
    id: IdArgument,
    kind: KindOption = "doc",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Show one record: its text, fields and the seq that last wrote it."""
    with connect(url) as client:
        record = client.get_record(collection, id, kind)
    if as_json:
        print_json(record)
        return
    out = Table(title=f"{collection} / {record.kind} / {record.id}", show_header=False)
    out.add_column(style="bold")
    out.add_column()
    for key, value in (
        ("seq", record.seq),
        ("fields", short_json(record.fields, 500)),
        ("text", record.text),
    ):
        out.add_row(key, text(value))
    console().print(out)


def delete(
    collection: CollectionArgument,
    id: IdArgument,
    kind: KindOption = "doc",
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Delete one record; every version drops it from its index."""
    with connect(url) as client:
        ack = client.delete(collection, id, kind)
    console().print(text(f"deleted {kind} record {id!r} from {collection!r}; seq {ack.seq}"))
