"""``embedswitch rollouts start|show|stop``: gated automatic rollouts, and what they did."""

from __future__ import annotations

import time
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .._errors import InvalidRequest
from ..evaluation.beir import load_judgments
from ..results import RolloutInfo
from ._common import (
    DEFAULT_URL,
    JsonOption,
    UrlOption,
    connect,
    console,
    print_json,
    reported,
    table,
    text,
)

app = typer.Typer(help="Gated automatic rollouts: start one, follow it, stop it.", no_args_is_help=True)

CollectionArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]
IdArgument = Annotated[int, typer.Argument(help="Rollout number (see 'rollouts show').", show_default=False)]


class Experiment(StrEnum):
    ab = "ab"
    interleaving = "interleaving"
    none = "none"


class Metric(StrEnum):
    ndcg = "ndcg@10"
    recall = "recall@100"
    mrr = "mrr@10"


def parse_steps(value: str) -> list[int]:
    """``"1,10,50,100"`` as ``[1, 10, 50, 100]``; ``InvalidRequest`` naming a bad part."""
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise InvalidRequest(
            f"--steps takes percents separated by commas, such as 1,10,50,100; got {value!r}"
        ) from None


@app.command("start")
def start(
    collection: CollectionArgument,
    to: Annotated[str, typer.Argument(help="The candidate version.", show_default=False)],
    steps: Annotated[
        str, typer.Option("--steps", help="Percents on the candidate, ending at 100.")
    ] = "1,10,50,100",
    min_requests: Annotated[
        int, typer.Option("--min-requests", min=1, help="Routed requests the candidate answers at each step.")
    ] = 200,
    max_error_rate: Annotated[
        float | None,
        typer.Option("--max-error-rate", help="Largest share of server errors on the candidate."),
    ] = 0.01,
    max_p99_ratio: Annotated[
        float | None, typer.Option("--max-p99-ratio", help="Largest p99 latency ratio to the live version.")
    ] = None,
    experiment: Annotated[
        Experiment, typer.Option("--experiment", help="Experiment outcome that must not be worse.")
    ] = Experiment.none,
    beir: Annotated[
        Path | None,
        typer.Option("--beir", help="Judged queries (BEIR dir, read here) for an offline gate.", exists=True),
    ] = None,
    offline_metric: Annotated[
        Metric, typer.Option("--offline-metric", help="The offline gate's metric.")
    ] = Metric.ndcg,
    offline_min: Annotated[
        float | None, typer.Option("--offline-min", help="The offline gate's floor (needs --beir).")
    ] = None,
    step_interval: Annotated[
        float, typer.Option("--step-interval", min=0, help="Seconds each step lasts at least.")
    ] = 0.0,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the rollout until it is over.")] = False,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Move traffic to a candidate step by step while the gates pass; roll back when one fails."""
    with reported(url):
        gates: dict[str, Any] = {
            "max_error_rate": max_error_rate,
            "max_p99_ratio": max_p99_ratio,
            "experiment": experiment.value,
        }
        gates["offline"] = offline_gate(beir, offline_metric, offline_min)
        spec = {
            "to": to,
            "steps": parse_steps(steps),
            "min_requests": min_requests,
            "gates": gates,
            "step_interval_s": step_interval,
        }
    with connect(url) as client:
        info = client.start_rollout(collection, spec)
        if wait:
            info = follow(client.rollout, collection, info, as_json)
    show(info, as_json)


def offline_gate(beir: Path | None, metric: Metric, floor: float | None) -> dict[str, Any] | None:
    if (beir is None) != (floor is None):
        raise InvalidRequest("an offline gate needs both --beir DIR and --offline-min FLOOR")
    if beir is None:
        return None
    queries, qrels = load_judgments(beir)
    return {"metric": metric.value, "min": floor, "queries": queries, "qrels": qrels}


def follow(fetch: Any, collection: str, info: RolloutInfo, as_json: bool) -> RolloutInfo:
    """Poll until the rollout is over, printing each new transition (unless ``as_json``)."""
    seen = len(info.transitions)
    out = console()
    while info.status == "running":
        time.sleep(0.5)
        info = fetch(collection, info.id)
        if not as_json:
            for entry in info.transitions[seen:]:
                out.print(text(f"{entry.outcome} at {entry.step}%: {entry.reason}"))
        seen = len(info.transitions)
    return info


@app.command("show")
def show_command(
    collection: CollectionArgument,
    id: Annotated[
        int | None, typer.Argument(help="Rollout number; none lists them all.", show_default=False)
    ] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """A rollout with every transition and its reason, or the list of rollouts."""
    with connect(url) as client:
        if id is not None:
            show(client.rollout(collection, id), as_json)
            return
        found = client.list_rollouts(collection)
    if as_json:
        print_json(found)
        return
    out = console()
    out.print(list_table(collection, found))
    if found:
        out.print(transitions_table(found[0]))


@app.command("stop")
def stop(
    collection: CollectionArgument, id: IdArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Stop a running rollout; the live version gets all traffic back."""
    with connect(url) as client:
        info = client.stop_rollout(collection, id)
    show(info, as_json)


def show(info: RolloutInfo, as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(summary_table(info))
    out.print(transitions_table(info))


def summary_table(info: RolloutInfo) -> Table:
    weights = ", ".join(f"{name}={weight}" for name, weight in info.weights.items())
    out = table(
        "#", "from", "to", "status", "step", "weights", "reason", title=f"rollout of {info.collection}"
    )
    out.add_row(
        text(info.id),
        text(info.live),
        text(info.to),
        text(info.status),
        text(f"{info.step}%"),
        text(weights),
        text(info.reason),
    )
    return out


def list_table(collection: str, rollouts: list[RolloutInfo]) -> Table:
    out = table("#", "started", "from", "to", "status", "step", "steps", title=f"rollouts of {collection}")
    for info in rollouts:
        started = datetime.fromtimestamp(info.created_at).strftime("%Y-%m-%d %H:%M:%S")
        out.add_row(
            text(info.id),
            text(started),
            text(info.live),
            text(info.to),
            text(info.status),
            text(f"{info.step}%"),
            text(",".join(str(step) for step in info.steps)),
        )
    return out


def transitions_table(info: RolloutInfo) -> Table:
    out = table("at", "outcome", "step", "weights", "reason", title=f"transitions of rollout #{info.id}")
    for entry in info.transitions:
        at = datetime.fromtimestamp(entry.at).strftime("%H:%M:%S")
        weights = ", ".join(f"{name}={weight}" for name, weight in entry.weights.items())
        out.add_row(text(at), text(entry.outcome), text(f"{entry.step}%"), text(weights), text(entry.reason))
    return out
