"""``embedswitch config``: the settings ``embedswitch serve`` would run with, and where each came from."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from ..settings import reference_table, rows, unknown_variables
from ._common import JsonOption, console, print_json, reported, table, text
from .serve import (
    ConfigOption,
    DataOption,
    Flags,
    HostOption,
    InsecureOption,
    LogFormatOption,
    LogLevelOption,
    PortOption,
    SetOption,
    StoreOption,
)

ReferenceOption = Annotated[
    bool, typer.Option("--reference", help="Print the Markdown table of every setting and its default.")
]


def show_config(
    data: DataOption = None,
    host: HostOption = None,
    port: PortOption = None,
    store: StoreOption = None,
    log_format: LogFormatOption = None,
    log_level: LogLevelOption = None,
    insecure: InsecureOption = None,
    config: ConfigOption = None,
    assignments: SetOption = None,
    as_json: JsonOption = False,
    reference: ReferenceOption = False,
) -> None:
    """Print the effective settings of `embedswitch serve` given the same flags, each with its
    source: flag, env, file or default (API keys masked)."""
    if reference:
        typer.echo(reference_table())
        return
    flags = Flags(data, host, port, store, log_format, log_level, insecure, tuple(assignments or ()), config)
    with reported():
        loaded = flags.load()
    for warning in unknown_variables(os.environ):
        Console(stderr=True).print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
    found = rows(loaded)
    if as_json:
        print_json({row.name: {"value": row.value, "source": row.source} for row in found})
        return
    caption = f"settings file: {loaded.file}" if loaded.file is not None else "no settings file"
    out = table("setting", "source", "variable", "value", caption=caption)
    for row in found:
        out.add_row(text(row.name), text(row.source), text(row.variable), text(row.value))
    console().print(out)
