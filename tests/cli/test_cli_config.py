"""``embedswitch config``: the settings serve would run with, each with its source, secrets masked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedswitch.cli import app
from embedswitch.settings import reference_table


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("EMBEDSWITCH_"):
            monkeypatch.delenv(name)


def test_config_shows_each_value_and_its_source(tmp_path: Path) -> None:
    file = tmp_path / "embedswitch.toml"
    file.write_text('data = "/var/lib/embedswitch"\nport = 9000\napi_keys = "admin:s3cret"\n')
    env = {"EMBEDSWITCH_PORT": "9100", "EMBEDSWITCH_MAX_APPLY_LAG": "500", "EMBEDSWITCH_APLY_BATCH": "1"}
    args = ["config", "--config", str(file), "--port", "9200", "--set", "log_format=json", "--json"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["port"] == {"value": "9200", "source": "flag"}
    assert shown["log_format"] == {"value": "json", "source": "flag"}
    assert shown["max_apply_lag"] == {"value": "500", "source": "env"}
    assert shown["data"] == {"value": "/var/lib/embedswitch", "source": "file"}
    assert shown["api_keys"] == {"value": "***", "source": "file"}
    assert shown["apply_batch"] == {"value": "256", "source": "default"}
    assert "s3cret" not in result.output
    assert "did you mean EMBEDSWITCH_APPLY_BATCH" in result.stderr


def test_config_as_a_table_and_a_bad_value(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "--set", "api_keys=read:s3cret"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "api_keys" in result.stdout and "***" in result.stdout and "s3cret" not in result.stdout
    bad = CliRunner().invoke(app, ["config"], env={"EMBEDSWITCH_PORT": "http"})
    assert bad.exit_code == 1 and "port (from EMBEDSWITCH_PORT)" in bad.output


def test_config_reference_prints_the_settings_table() -> None:
    result = CliRunner().invoke(app, ["config", "--reference"])
    assert result.exit_code == 0 and result.stdout.strip() == reference_table()
