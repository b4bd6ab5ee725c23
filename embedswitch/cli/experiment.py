"""``embedswitch experiment show|reset`` and ``embedswitch feedback``: judging versions on live traffic."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import typer

from .._errors import InvalidRequest
from ..results import ExperimentReport
from ._common import DEFAULT_URL, JsonOption, UrlOption, connect, console, print_json, table, text

app = typer.Typer(
    help="The current experiment: A/B per version, interleaving, shadow traffic.", no_args_is_help=True
)

CollectionArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]
ShadowOption = Annotated[
    str | None,
    typer.Option("--shadow", help="Mirror a share of requests to a candidate: VERSION=PERCENT, or off."),
]
InterleaveOption = Annotated[
    str | None,
    typer.Option("--interleave", help="Interleave two ready versions: V1,V2=PERCENT, or off."),
]


def parse_shadow(value: str) -> dict[str, Any] | Literal["off"]:
    """``v2=10`` as ``{"version": "v2", "percent": 10.0}``; ``off`` as is."""
    if value == "off":
        return "off"
    name, percent = _split(value, "--shadow", "v2=10")
    return {"version": name, "percent": percent}


def parse_interleave(value: str) -> dict[str, Any] | Literal["off"]:
    """``v1,v2=20`` as ``{"versions": ["v1", "v2"], "percent": 20.0}``; ``off`` as is."""
    if value == "off":
        return "off"
    names, percent = _split(value, "--interleave", "v1,v2=20")
    return {"versions": names.split(","), "percent": percent}


def _split(value: str, option: str, example: str) -> tuple[str, float]:
    name, sep, percent = value.rpartition("=")
    try:
        number = float(percent)
    except ValueError:
        number = -1.0
    if not sep or not name or number < 0:
        raise InvalidRequest(f"{option} expects {example} (a percent after '=') or off, got {value!r}")
    return name, number


@app.command("show")
def show(collection: CollectionArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """A/B numbers with 95% intervals and verdicts, interleaving wins, shadow candidates."""
    with connect(url) as client:
        report = client.experiment(collection)
    show_report(report, as_json)


@app.command("reset")
def reset(collection: CollectionArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Start a new experiment now; the control becomes the version with the largest weight."""
    with connect(url) as client:
        report = client.reset_experiment(collection)
    show_report(report, as_json)


def feedback(
    collection: CollectionArgument,
    request_id: Annotated[str, typer.Argument(help="request_id of a search or recommend response.")],
    id: Annotated[str, typer.Argument(help="Id of the hit the user acted on.", show_default=False)],
    event: Annotated[str, typer.Option("--event", help="click or convert.")] = "click",
    value: Annotated[float | None, typer.Option("--value", help="Value of a conversion.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Report that a user clicked (or converted on) a hit; the same event is counted once."""
    body = {"request_id": request_id, "id": id, "event": event}
    with connect(url) as client:
        ack = client.feedback(collection, body if value is None else {**body, "value": value})
    if as_json:
        print_json(ack)
        return
    counted = "counted" if ack.counted else "already counted"
    console().print(text(f"{event} on {id!r} (rank {ack.rank}, version {ack.version}): {counted}"))


def show_report(report: ExperimentReport, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    out = console()
    started = datetime.fromtimestamp(report.started_at).strftime("%Y-%m-%d %H:%M:%S")
    ab = report.ab
    arms = table(
        "version",
        "requests",
        "ctr",
        "ctr 95%",
        "conversion",
        "mrr",
        "role",
        title=f"experiment #{report.experiment} of {report.collection}, since {started}",
    )
    for name, arm in ab.arms.items():
        role = (
            "control"
            if name == ab.control
            else ab.comparisons[name].verdict
            if name in ab.comparisons
            else ""
        )
        arms.add_row(
            text(name),
            text(arm.requests),
            text(f"{arm.ctr:.3f}"),
            text(_ci(arm.ctr_ci)),
            text(f"{arm.conversion_rate:.3f}"),
            text(f"{arm.mrr:.3f}"),
            text(role),
        )
    out.print(arms)
    if report.interleaving is not None:
        found = report.interleaving
        first, second = found.versions
        rows = table("pair", "impressions", "wins", "ties", "p", "verdict", title="interleaving")
        wins = f"{first} {found.wins[first]} : {found.wins[second]} {second}"
        rows.add_row(
            text(f"{first} vs {second}"),
            text(found.impressions),
            text(wins),
            text(found.ties),
            text(f"{found.p_value:.3g}"),
            text(found.verdict),
        )
        out.print(rows)
    if report.shadow:
        rows = table(
            "candidate",
            "mirrored",
            "errors",
            "p50 ms",
            "p99 ms",
            "live p99 ms",
            "overlap@10",
            title="shadow traffic",
        )
        for s in report.shadow:
            rows.add_row(
                text(s.candidate),
                text(s.mirrored),
                text(s.errors),
                text(f"{s.latency_ms.p50:.2f}"),
                text(f"{s.latency_ms.p99:.2f}"),
                text(f"{s.live_latency_ms.p99:.2f}"),
                text(f"{s.overlap_at_10:.3f}"),
            )
        out.print(rows)


def _ci(ci: tuple[float, float]) -> str:
    return f"{ci[0]:.3f}–{ci[1]:.3f}"
