"""``embedswitch demo``: load the scifact demo into a data dir, then serve it (what ``make run`` calls)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..demo import DEMO_COLLECTION, DemoProgress, DemoReport, ensure_demo
from ..engine import Engine
from ._common import DEFAULT_URL, RateColumn, console, progress_bar, reported, text
from .serve import (
    WILDCARD_HOSTS,
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
    run_server,
    start,
)

EXAMPLE_QUERY = "vitamin D deficiency and the risk of cancer"


def demo(
    data: DataOption = None,
    host: HostOption = None,
    port: PortOption = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="BEIR corpus.jsonl to load (default: ../shared/data/scifact/corpus.jsonl if present, "
            "else the shipped 200-record sample).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    store: StoreOption = None,
    log_format: LogFormatOption = None,
    log_level: LogLevelOption = None,
    insecure: InsecureOption = None,
    config: ConfigOption = None,
    assignments: SetOption = None,
) -> None:
    """Create (first run) or refresh the scifact collection in the data dir, then serve it over HTTP
    (with the settings and flags of `embedswitch serve`)."""
    out = console()
    flags = Flags(data, host, port, store, log_format, log_level, insecure, tuple(assignments or ()), config)
    loaded, http, engine = start(flags)
    try:
        with reported():
            report = load(engine, corpus, out)
    except BaseException:
        engine.close()
        raise
    settings = loaded.settings
    print_intro(out, report, base_url(settings.host, settings.port))
    run_server(engine, settings, http)


def load(engine: Engine, corpus: Path | None, out: Console) -> DemoReport:
    """``ensure_demo`` with a line before the model loads and a progress bar over the ingestion."""
    with progress_bar(out, RateColumn()) as bar:
        task = bar.add_task("ingesting corpus", total=None, visible=False)

        def show(step: DemoProgress) -> None:
            if step.stage == "create":
                bar.console.print(
                    text(
                        f"creating collection {DEMO_COLLECTION!r} ({step.detail}); the first run distills "
                        "the model: about 20 s on an idle machine"
                    )
                )
            elif step.stage == "ingest" and not bar.tasks[0].visible:
                bar.reset(task, total=step.total, completed=step.done, visible=True)
            elif step.stage == "ingest":
                bar.update(task, completed=step.done)
            else:
                bar.console.print(text(f"waiting for version {step.detail!r} to index every record"))

        return ensure_demo(engine, corpus, show)


def base_url(host: str, port: int) -> str:
    """The URL a local client uses to reach a server listening on ``host``."""
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def print_intro(out: Console, report: DemoReport, url: str) -> None:
    """Where the API is and three commands to paste into another terminal."""
    flag = "" if url == DEFAULT_URL else f" --url {url}"
    body = json.dumps({"text": EXAMPLE_QUERY, "k": 5})
    lines = [
        "",
        f"{report.collection}: {report.records} records from {report.corpus} "
        f"({report.changed} changed), served by {', '.join(report.serving)}",
        f"  API:  {url}",
        f"  docs: {url}/docs",
        "",
        "Try, in another terminal:",
        f'  embedswitch search {report.collection} "{EXAMPLE_QUERY}"{flag}',
        f"  curl -s -X POST {url}/v1/collections/{report.collection}/search "
        f"-H 'content-type: application/json' -d {shlex.quote(body)}",
        f"  embedswitch status {report.collection}{flag}",
        "(from the repo: .venv/bin/embedswitch ...)",
        "",
    ]
    for line in lines:
        out.print(text(line), soft_wrap=True)
