"""``embedswitch serve`` off loopback, and ``embedswitch key new``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedswitch.cli import app
from embedswitch.cli.serve import http_config
from embedswitch.http.auth import Role, digest, load_key_file


def test_serving_off_loopback_without_keys_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMBEDSWITCH_API_KEYS", raising=False)
    result = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "data"), "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "without API keys" in result.output and "--insecure" in result.output
    assert not (tmp_path / "data").exists()  # refused before the data dir was touched


def test_the_served_host_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDSWITCH_ALLOWED_HOSTS", raising=False)
    monkeypatch.setenv("EMBEDSWITCH_API_KEYS", "admin:k")
    assert "10.1.2.3" in http_config("10.1.2.3", insecure=False).allowed_hosts
    assert "*" in http_config("0.0.0.0", insecure=False).allowed_hosts
    monkeypatch.delenv("EMBEDSWITCH_API_KEYS")
    assert "*" in http_config("0.0.0.0", insecure=True).allowed_hosts
    monkeypatch.setenv("EMBEDSWITCH_ALLOWED_HOSTS", "search.internal")
    assert http_config("0.0.0.0", insecure=True).allowed_hosts == ["search.internal"]


def test_key_new_prints_a_key_and_its_file_entry(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["key", "new", "--role", "write", "--collection", "docs", "--name", "ix"]
    )
    assert result.exit_code == 0, result.output
    key = result.output.split("key (shown once): ")[1].split()[0]
    entry = json.loads(result.output.split('{"keys": [...]}: ')[1])
    assert entry == {"name": "ix", "role": "write", "sha256": digest(key), "collections": ["docs"]}
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [entry]}))
    [loaded] = load_key_file(tmp_path / "keys.json")
    assert loaded.role is Role.write and loaded.may(Role.write, "docs") is None
