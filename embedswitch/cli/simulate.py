"""``embedswitch simulate``: simulated users search a collection and click, for demos and trials."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..evaluation.beir import load_judgments
from ..evaluation.simulation import ClickModel, Simulation, SimulationReport
from ._common import DEFAULT_URL, JsonOption, UrlOption, connect, console, print_json, reported, table, text

SCIFACT = Path("../shared/data/scifact")


def simulate(
    collection: Annotated[str, typer.Argument(help="Collection name.", show_default=False)],
    sessions: Annotated[int, typer.Option("--sessions", min=1, help="How many searches to make.")] = 1000,
    beir: Annotated[
        Path, typer.Option("--beir", help="Judged queries: a BEIR dir (queries.jsonl, qrels/test.tsv).")
    ] = SCIFACT,
    users: Annotated[
        int, typer.Option("--users", min=1, help="Distinct users (sticky routing keys).")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same sessions and clicks.")] = 0,
    threads: Annotated[int, typer.Option("--threads", min=1, max=64, help="Users searching at once.")] = 2,
    p_relevant: Annotated[float, typer.Option("--p-relevant", min=0, max=1)] = ClickModel.p_relevant,
    p_irrelevant: Annotated[float, typer.Option("--p-irrelevant", min=0, max=1)] = ClickModel.p_irrelevant,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Judged queries as simulated users: search with a user key, click by position and relevance,
    send the clicks as feedback (see GET .../experiment for the verdict)."""
    with reported(url):
        queries, qrels = load_judgments(beir)
        model = ClickModel(p_relevant=p_relevant, p_irrelevant=p_irrelevant)
        simulation = Simulation(queries, qrels, model=model, users=users, seed=seed)
    with connect(url) as client:
        report = simulation.run(client, collection, sessions, threads=threads)
    if as_json:
        by_version = {version: asdict(tally) for version, tally in report.by_version.items()}
        print_json({"sessions": report.sessions, "by_version": by_version, "errors": report.errors})
        return
    console().print(report_table(collection, report))


def report_table(collection: str, report: SimulationReport) -> Table:
    errors = ", ".join(f"{code}: {n}" for code, n in report.errors.items()) or "none"
    out = table(
        "version",
        "sessions",
        "clicked",
        "ctr",
        "clicks",
        "conversions",
        title=f"simulated users on {collection}",
        caption=f"{report.sessions} sessions; errors: {errors}",
    )
    for version, tally in sorted(report.by_version.items()):
        ctr = tally.clicked_sessions / tally.sessions if tally.sessions else 0.0
        out.add_row(
            text(version),
            text(tally.sessions),
            text(tally.clicked_sessions),
            text(f"{ctr:.3f}"),
            text(tally.clicks),
            text(tally.conversions),
        )
    return out
