"""Server settings: one model over the engine's, the HTTP layer's and the server's own options, from
flags over environment over file over defaults, each value knowing its source."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from embedswitch import EngineConfig, InvalidRequest
from embedswitch.http.settings import HttpConfig
from embedswitch.settings import (
    OTHER_VARIABLES,
    ServeConfig,
    ServerSettings,
    load_settings,
    parse_assignments,
    reference_table,
    rows,
    unknown_variables,
)

REPO = Path(__file__).resolve().parents[1]
MISSPELLED_ON_PURPOSE = {
    "tests/test_settings.py",
    "tests/cli/test_cli_serve.py",
    "tests/cli/test_cli_config.py",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("EMBEDSWITCH_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "embedswitch.toml"
    path.write_text(text)
    return path


def test_flags_beat_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(tmp_path, 'apply_batch = 1\nbackfill_batch = 2\nport = 3\nallowed_hosts = ["a.internal"]\n')
    monkeypatch.setenv("EMBEDSWITCH_BACKFILL_BATCH", "20")
    monkeypatch.setenv("EMBEDSWITCH_PORT", "30")
    loaded = load_settings({"port": "300"}, file)
    settings = loaded.settings
    assert (settings.apply_batch, settings.backfill_batch, settings.port) == (1, 20, 300)
    assert settings.allowed_hosts == ["a.internal"]
    assert loaded.sources["apply_batch"] == "file" and loaded.sources["backfill_batch"] == "env"
    assert loaded.sources["port"] == "flag" and loaded.sources["min_seq_timeout_s"] == "default"
    assert loaded.file == file


def test_the_file_may_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSWITCH_CONFIG", str(write(tmp_path, 'log_format = "json"\n')))
    assert load_settings({}).settings.log_format == "json"


def test_values_as_variables_and_flags_write_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSWITCH_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("EMBEDSWITCH_TORCH_THREADS", "null")
    monkeypatch.setenv("embedswitch_inline_quick_requests", "false")  # names are case-insensitive
    monkeypatch.setenv("EMBEDSWITCH_QUERY_LOG_SIZE", "")  # empty: unset
    flags = parse_assignments(["allowed-hosts=x,y", "max_apply_lag=null", "log_level=DEBUG"])
    settings = load_settings(flags).settings
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.allowed_hosts == ["x", "y"] and settings.max_apply_lag is None
    assert settings.torch_threads is None and settings.inline_quick_requests is False
    assert settings.query_log_size == 0 and settings.log_level == "debug"


def test_bad_values_name_the_setting_and_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDSWITCH_APPLY_BATCH", "many")
    with pytest.raises(InvalidRequest, match="apply_batch .from EMBEDSWITCH_APPLY_BATCH.: Input should be"):
        load_settings({})
    monkeypatch.delenv("EMBEDSWITCH_APPLY_BATCH")
    file = write(tmp_path, "port = 0\n")
    with pytest.raises(InvalidRequest, match=f"port .from {re.escape(str(file))}.: Input should be"):
        load_settings({}, file)
    with pytest.raises(InvalidRequest, match="drain_timeout_s .30. must be less than shutdown_timeout_s"):
        load_settings({"drain_timeout_s": "30"})
    with pytest.raises(InvalidRequest, match="log_format .from a flag.: Input should be 'plain' or 'json'"):
        load_settings({"log_format": "xml"})


def test_unknown_names_in_a_file_or_a_flag_are_errors_with_the_closest_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="unknown setting 'aply_batch'; did you mean 'apply_batch'"):
        load_settings({}, write(tmp_path, "aply_batch = 3\n"))
    with pytest.raises(InvalidRequest, match="not valid TOML"):
        load_settings({}, write(tmp_path, "apply_batch = \n"))
    with pytest.raises(InvalidRequest, match="does not exist"):
        load_settings({}, tmp_path / "missing.toml")
    with pytest.raises(InvalidRequest, match="did you mean 'max_body_bytes'"):
        parse_assignments(["max_body_byte=1"])
    with pytest.raises(InvalidRequest, match="NAME=VALUE"):
        parse_assignments(["apply_batch"])


def test_unknown_variables_are_warned_about_with_the_closest_name() -> None:
    environ = {
        "EMBEDSWITCH_APLY_BATCH": "3",
        "EMBEDSWITCH_APPLY_BATCH": "3",
        "EMBEDSWITCH_URL": "http://x",
        "EMBEDSWITCH_API_KEY": "k",
        "EMBEDSWITCH_OPENAI_KEY": "sk",
        "PATH": "/bin",
    }
    [warning] = unknown_variables(environ, also_known={"EMBEDSWITCH_OPENAI_KEY"})
    assert warning == (
        "unknown environment variable EMBEDSWITCH_APLY_BATCH is ignored; "
        "did you mean EMBEDSWITCH_APPLY_BATCH?"
    )


def test_every_embedswitch_variable_in_the_repository_is_known() -> None:
    """The package, the benchmarks, the tests and the docs name only settings and the other known
    variables (tests also name the key variables of their models, EMBEDSWITCH_TEST_*)."""
    used: dict[str, str] = {}
    for folder in ("embedswitch", "bench", "tests", "docs"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in {".py", ".md"} and str(path.relative_to(REPO)) not in MISSPELLED_ON_PURPOSE:
                for name in re.findall(r"\bEMBEDSWITCH_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
                    used.setdefault(name, str(path.relative_to(REPO)))
    for name in re.findall(r"\bEMBEDSWITCH_[A-Z0-9_]*[A-Z0-9]\b", (REPO / "README.md").read_text()):
        used.setdefault(name, "README.md")
    unknown = unknown_variables(dict.fromkeys(used, ""))
    unknown = [w for w in unknown if not w.split()[3].startswith("EMBEDSWITCH_TEST_")]
    assert not unknown, {w: used[w.split()[3]] for w in unknown}
    assert set(OTHER_VARIABLES) <= set(used)  # none is listed without being read


def test_the_server_settings_are_the_engine_http_and_serve_settings() -> None:
    """Adding a field to EngineConfig, HttpConfig or ServeConfig makes it a setting; no two share a name."""
    parts = [set(EngineConfig.model_fields), set(HttpConfig.model_fields), set(ServeConfig.model_fields)]
    assert sum(len(p) for p in parts) == len(set().union(*parts))
    assert set(ServerSettings.model_fields) == set().union(*parts)
    settings = load_settings({"apply_batch": "7", "rate_limit_burst": "9", "api_keys": "admin:k"}).settings
    assert settings.engine_config() == EngineConfig(apply_batch=7, encode_workers=settings.encode_workers)
    assert settings.http_config().rate_limit_burst == 9
    assert settings.http_config().api_keys == SecretStr("admin:k")


def test_secrets_are_masked_when_shown() -> None:
    shown = {row.name: row for row in rows(load_settings({"api_keys": "admin:s3cret"}))}
    assert shown["api_keys"].value == "***" and shown["api_keys"].source == "flag"
    assert "s3cret" not in repr(load_settings({"api_keys": "admin:s3cret"}).settings)


def test_operations_md_lists_every_setting() -> None:
    """docs/operations.md carries the table `embedswitch config --reference` prints."""
    table = reference_table()
    assert table in (REPO / "docs" / "operations.md").read_text()
    for name in ServerSettings.model_fields:
        assert f"| `{name}` |" in table
