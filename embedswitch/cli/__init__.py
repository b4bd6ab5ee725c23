"""The ``embedswitch`` command: serve the API, or drive a running server over HTTP.

Each noun has its module: ``serve``, ``demo``, ``collections``, ``records`` (ingest, get, delete),
``search``, ``recommend`` (recommend, interactions), ``versions``, ``traffic`` (traffic, promote,
rollback, retire) and ``status``.
"""

from __future__ import annotations

import typer

from . import collections, demo, recommend, records, search, serve, status, traffic, versions

__all__ = ["app", "main"]

app = typer.Typer(
    name="embedswitch",
    help="Embedding search that makes embedding-model upgrades safe. Server URL: --url or $EMBEDSWITCH_URL.",
    no_args_is_help=True,
    add_completion=False,
)

app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.add_typer(collections.app, name="collections")
app.command("ingest")(records.ingest)
app.command("get")(records.get)
app.command("delete")(records.delete)
app.command("search")(search.search)
app.command("recommend")(recommend.recommend)
app.command("interactions")(recommend.interactions)
app.add_typer(versions.app, name="versions")
app.command("traffic")(traffic.traffic)
app.command("promote")(traffic.promote)
app.command("rollback")(traffic.rollback)
app.command("retire")(traffic.retire)
app.command("status")(status.status)


def main() -> None:
    """Entry point of the ``embedswitch`` script."""
    app()
