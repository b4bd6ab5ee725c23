"""``embedswitch collections create|list|show|delete``."""

from __future__ import annotations

from typing import Annotated

import typer

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
    print_json,
    resolve_model,
    short_json,
    table,
    text,
    version_body,
)
from .versions import versions_table

app = typer.Typer(help="Create, list, show and delete collections.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]


@app.command("create")
def create(
    name: NameArgument,
    version: Annotated[str, typer.Option("--version", help="Name of the first version.")] = "v1",
    model: ModelOption = None,
    spec: ModelSpecOption = None,
    index: IndexOption = IndexType.auto,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Create a collection with its first version, which gets all traffic. Default model: minilm-static."""
    with connect(url) as client:
        body = version_body(version, resolve_model(model, spec, default="minilm-static"), index)
        info = client.create_collection(name, body)
    if as_json:
        print_json(info)
        return
    first = info.versions[0]
    console().print(
        text(
            f"created collection {info.name!r} with version {first.name!r} "
            f"(model {first.model_label}, dim {first.dim}, index {first.index.get('type', 'auto')})"
        )
    )


@app.command("list")
def list_(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """List the collections with their record counts, versions and traffic."""
    with connect(url) as client:
        found = client.list_collections()
    if as_json:
        print_json(found)
        return
    out = table("name", "records", "head_seq", "versions", "traffic")
    for info in found:
        traffic = ", ".join(f"{name}={weight}" for name, weight in info.traffic.items())
        versions = ", ".join(v.name for v in info.versions)
        out.add_row(text(info.name), text(info.records), text(info.head_seq), text(versions), text(traffic))
    console().print(
        out if found else text("no collections yet; create one with 'embedswitch collections create'")
    )


@app.command("show")
def show(name: NameArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Show a collection and a table of its versions."""
    with connect(url) as client:
        info = client.describe(name)
    if as_json:
        print_json(info)
        return
    kinds = short_json(info.records_by_kind)
    title = f"collection {info.name}: {info.records} records {kinds}, head seq {info.head_seq}"
    console().print(versions_table(info.versions, title=title))


@app.command("delete")
def delete(
    name: NameArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Delete a collection with all its records, versions and indexes."""
    if not yes:
        typer.confirm(f"Delete collection {name!r} with all its records, versions and indexes?", abort=True)
    with connect(url) as client:
        client.delete_collection(name)
    console().print(text(f"deleted collection {name!r}"))
