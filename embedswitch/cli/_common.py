"""What every command shares: the server URL option, error reporting, JSON output and tables."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import httpx
import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from .._errors import EmbedswitchError, InvalidRequest
from ..client import Client

DEFAULT_URL = "http://127.0.0.1:8000"
NUMERIC_COLUMNS = frozenset(
    {"#", "rank", "score", "dim", "seq", "head_seq", "applied_seq", "lag", "records", "weight", "share"}
)

UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="EMBEDSWITCH_URL",
        help="Server URL (default: $EMBEDSWITCH_URL, else http://127.0.0.1:8000).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
KindOption = Annotated[str, typer.Option("--kind", help="Record kind; ids are unique per (kind, id).")]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Model short name (hashing, minilm, minilm-static) or spec JSON."),
]
ModelSpecOption = Annotated[
    str | None,
    typer.Option("--model-spec", help='Model spec as JSON, e.g. \'{"type": "hashing", "dim": 128}\'.'),
]


class IndexType(StrEnum):
    """The embedded index types; ``auto`` starts exact and turns HNSW past a size threshold."""

    auto = "auto"
    exact = "exact"
    hnsw = "hnsw"


IndexOption = Annotated[IndexType, typer.Option("--index", help="Vector index type.")]


def console() -> Console:
    """A console on stdout, built per command so that the terminal width is read at each run."""
    return Console()


def fail(code: str, message: str) -> typer.Exit:
    """Print ``error [code]: message`` in red on stderr, on one line; returns the exit to raise."""
    Console(stderr=True).print(Text(f"error [{code}]: {message}", style="red"), soft_wrap=True)
    return typer.Exit(1)


@contextmanager
def reported(url: str | None = None) -> Iterator[None]:
    """Turn embedswitch and connection errors raised inside into a one-line message and exit code 1."""
    try:
        yield
    except EmbedswitchError as exc:
        raise fail(exc.code, exc.message) from None
    except httpx.ConnectError:
        raise fail(
            "unreachable",
            f"cannot reach an embedswitch server at {url}; start one with 'embedswitch serve --data DIR' "
            "or point --url (or $EMBEDSWITCH_URL) at a running one",
        ) from None
    except httpx.TimeoutException:
        raise fail("timeout", f"the server at {url} did not answer in time; retry or check its log") from None
    except httpx.HTTPError as exc:
        raise fail("http_error", f"talking to {url} failed: {exc}") from None
    except TimeoutError as exc:
        raise fail("timeout", str(exc)) from None


@contextmanager
def connect(url: str) -> Iterator[Client]:
    """A ``Client`` for ``url``, with errors reported as ``reported`` does."""
    with reported(url), Client(url) as client:
        yield client


def resolve_model(model: str | None, spec: str | None, default: str | None = None) -> Any:
    """The model a command names: ``--model`` or ``--model-spec`` (decoded), never both."""
    if model is not None and spec is not None:
        raise InvalidRequest("give --model or --model-spec, not both")
    if spec is not None:
        try:
            return json.loads(spec)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(
                f'--model-spec is not valid JSON ({exc.msg}); e.g. \'{{"type": "hashing"}}\''
            ) from None
    if model is not None:
        return model
    if default is None:
        raise InvalidRequest("name the model with --model (e.g. minilm-static) or --model-spec JSON")
    return default


def version_body(name: str, model: Any, index: IndexType, source: str = "model") -> dict[str, Any]:
    return {"name": name, "model": model, "index": {"type": index.value}, "source": source}


def print_json(data: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """``data`` as indented JSON on stdout, plain (no colors, no wrapping) so that it pipes."""
    if isinstance(data, BaseModel):
        payload: Any = data.model_dump(mode="json")
    elif isinstance(data, Sequence):
        payload = [item.model_dump(mode="json") for item in data]
    else:
        payload = data
    typer.echo(json.dumps(payload, indent=2))


def text(value: object) -> Text:
    """A table cell shown as is: user data is never read as rich markup."""
    return Text("" if value is None else str(value))


def table(*columns: str, title: str | None = None, caption: str | None = None) -> Table:
    """A compact table; numeric columns align right and only the last column wraps."""
    out = Table(
        title=title,
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for position, column in enumerate(columns, start=1):
        out.add_column(
            column,
            justify="right" if column in NUMERIC_COLUMNS else "left",
            min_width=len(column),
            no_wrap=position < len(columns),
        )
    return out


def short_json(value: Any, limit: int = 60) -> str:
    return clip(json.dumps(value, separators=(",", ":"), ensure_ascii=False), limit)


def clip(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class RateColumn(ProgressColumn):
    """Records per second, measured by rich over the recent past."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("- records/s" if speed is None else f"{speed:,.0f} records/s", style="cyan")


def progress_bar(out: Console, *extra: ProgressColumn) -> Progress:
    """The progress display of long work: description, bar, done/total, then ``extra`` columns."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        console=out,
    )
