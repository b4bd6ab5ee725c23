"""Running ``embedswitch`` commands in process against a server URL, shared by the CLI tests."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from embedswitch.cli import app


def cli(url: str, *args: str) -> Result:
    """Run ``embedswitch ARGS --url URL`` in a wide terminal so that tables are not cut."""
    result = CliRunner().invoke(app, [*args, "--url", url], env={"COLUMNS": "250"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(url: str, *args: str) -> str:
    """``cli`` that must exit 0; its output."""
    result = cli(url, *args)
    assert result.exit_code == 0, result.output
    return result.output
