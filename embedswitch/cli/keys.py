"""``embedswitch key new``: make an API key and the entry that goes into the key file."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from ..http.auth import Role, digest, new_key

RoleName = StrEnum("RoleName", [role.name for role in Role])  # type: ignore[misc]

app = typer.Typer(help="API keys (the server keeps only their sha256).", no_args_is_help=True)


@app.command("new")
def new(
    role: Annotated[RoleName, typer.Option("--role", help="read < write < admin.")],
    collection: Annotated[
        list[str] | None, typer.Option("--collection", help="Limit the key to this collection (repeatable).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label for the key file.")] = "",
) -> None:
    """Print a new random key (give it to the client) and its key-file entry (give it to the server)."""
    key = new_key()
    entry: dict[str, object] = {"name": name, "role": role.value, "sha256": digest(key)}
    if collection:
        entry["collections"] = sorted(set(collection))
    typer.echo(f"key (shown once): {key}")
    typer.echo(f'key-file entry, inside {{"keys": [...]}}: {json.dumps(entry)}')
