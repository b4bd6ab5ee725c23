"""The ``embedswitch`` command: serve the API, or drive a running server over HTTP.

Each noun has its module: ``serve``, ``config`` (the settings serve would use), ``demo``,
``cluster`` (PostgreSQL and several serving processes on one machine),
``collections``, ``records`` (ingest, get, delete), ``search``, ``recommend`` (recommend,
interactions, generate-data), ``train``, ``versions``, ``traffic`` (traffic, promote, rollback,
retire), ``rollouts`` (start, show, stop), ``simulate``, ``status``, ``quarantine`` (list, retry,
skip), ``evaluate`` (evaluate, evaluate-candidate) and ``experiment`` (experiment show|reset, feedback).
"""

from __future__ import annotations

import typer

from . import (
    cluster,
    collections,
    config,
    demo,
    evaluate,
    experiment,
    keys,
    quarantine,
    recommend,
    records,
    rollouts,
    search,
    serve,
    simulate,
    status,
    traffic,
    train,
    versions,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="embedswitch",
    help="Embedding search that makes embedding-model upgrades safe. Server URL: --url or $EMBEDSWITCH_URL.",
    no_args_is_help=True,
    add_completion=False,
)

app.command("serve")(serve.serve)
app.command("config")(config.show_config)
app.command("demo")(demo.demo)
app.command("cluster")(cluster.cluster)
app.add_typer(collections.app, name="collections")
app.command("ingest")(records.ingest)
app.command("get")(records.get)
app.command("delete")(records.delete)
app.command("search")(search.search)
app.command("recommend")(recommend.recommend)
app.command("interactions")(recommend.interactions)
app.command("generate-data")(recommend.generate_data)
app.add_typer(train.app, name="train")
app.add_typer(versions.app, name="versions")
app.command("traffic")(traffic.traffic)
app.command("promote")(traffic.promote)
app.command("rollback")(traffic.rollback)
app.command("retire")(traffic.retire)
app.command("status")(status.status)
app.add_typer(quarantine.app, name="quarantine")
app.add_typer(experiment.app, name="experiment")
app.command("feedback")(experiment.feedback)
app.command("evaluate")(evaluate.evaluate)
app.command("evaluate-candidate")(evaluate.evaluate_candidate)
app.add_typer(rollouts.app, name="rollouts")
app.add_typer(keys.app, name="key")
app.command("simulate")(simulate.simulate)


def main() -> None:
    """Entry point of the ``embedswitch`` script."""
    app()
