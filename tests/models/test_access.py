"""What a model spec may reach: the allowlists of ``ModelAccess`` on real paths and URLs. The
same checks end to end, over HTTP, are in ``tests/http/test_model_access.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from embedswitch import EngineConfig, InvalidRequest, ModelNotAllowed
from embedswitch._env import env_values
from embedswitch.http.settings import HttpConfig
from embedswitch.models import ModelAccess, parse_model_spec
from embedswitch.models.access import KEY_ENV_PREFIX, url_under
from embedswitch.specs import parse


def from_env(values: dict[str, str]) -> EngineConfig:
    """The engine's settings as ``Engine.open`` reads them from ``EMBEDSWITCH_<FIELD>`` variables."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        return parse(EngineConfig, env_values(EngineConfig))


def openai(**fields: object) -> object:
    return parse_model_spec({"type": "openai", "url": "http://127.0.0.1:9/v1", "model": "m", **fields})


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("EMBEDSWITCH_KEY_OPENAI", True),
        ("EMBEDSWITCH_KEY_", True),
        ("EMBEDSWITCH_API_KEYS", False),  # the server's own keys
        (KEY_ENV_PREFIX[:-1] + "S", False),  # the prefix without its "_", plus "S"
        ("HOME", False),
        ("OPENAI_API_KEY", False),
        ("embedswitch_key_openai", False),
    ],
)
def test_default_key_envs_are_the_prefix_only(name: str, allowed: bool) -> None:
    access = ModelAccess()
    assert access.key_env_allowed(name) is allowed
    spec = openai(api_key_env=name)
    if allowed:
        access.check(spec)  # type: ignore[arg-type]
    else:
        with pytest.raises(ModelNotAllowed, match=f"'{name}'") as info:
            access.check(spec)  # type: ignore[arg-type]
        assert "EMBEDSWITCH_MODEL_KEY_ENVS" in info.value.message and info.value.status == 403


def test_names_and_prefixes_from_the_settings() -> None:
    config = from_env({"EMBEDSWITCH_MODEL_KEY_ENVS": "OPENAI_API_KEY, TEAM_*"})
    access = config.model_access(Path("/data"))
    assert access.key_envs == ("OPENAI_API_KEY", "TEAM_*")
    assert [access.key_env_allowed(n) for n in ("OPENAI_API_KEY", "OPENAI_API_KEY_2", "TEAM_X", "TEA")] == [
        True,
        False,
        True,
        False,
    ]
    assert not EngineConfig(model_key_envs=[]).model_access(Path("/d")).key_env_allowed(f"{KEY_ENV_PREFIX}X")


def test_model_dirs_default_to_the_data_dirs_models_and_come_from_the_settings() -> None:
    assert EngineConfig().model_access(Path("/data")).model_dirs == (Path("/data/models"),)
    config = from_env({"EMBEDSWITCH_MODEL_DIRS": "/srv/models, ~/models"})
    assert config.model_access(Path("/data")).model_dirs == (Path("/srv/models"), Path.home() / "models")
    unset = from_env({"EMBEDSWITCH_MODEL_DIRS": ""})  # an empty variable counts as unset
    assert unset.model_access(Path("/d")).model_dirs == (Path("/d/models"),)


@pytest.mark.parametrize("bad", ["A B", "X-Y", "*A", "A**", ""])
def test_bad_key_env_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="not a variable name or a prefix"):
        EngineConfig(model_key_envs=[bad])
    if bad:
        with pytest.raises(InvalidRequest, match="model_key_envs"):
            from_env({"EMBEDSWITCH_MODEL_KEY_ENVS": bad})


def test_no_setting_name_is_readable_under_the_default_prefix() -> None:
    """A spec could read a setting's variable (``EMBEDSWITCH_<FIELD>``) if a field started with
    ``key_``: the server's API keys, say."""
    for config in (EngineConfig, HttpConfig):
        for name in config.model_fields:
            assert not ModelAccess().key_env_allowed(f"EMBEDSWITCH_{name.upper()}"), name


@pytest.mark.parametrize(
    ("url", "prefix", "under"),
    [
        ("http://api.example/v1/embeddings", "http://api.example/v1", True),
        ("http://api.example/v1/embeddings", "http://api.example/v1/", True),
        ("http://api.example/v1/embeddings", "http://api.example", True),
        ("http://api.example:80/v1/embeddings", "http://api.example/v1", True),
        ("HTTP://API.EXAMPLE/v1/embeddings", "http://api.example/v1", True),
        ("https://api.example/v1/embeddings", "http://api.example/v1", False),
        ("http://api.example:8080/v1/embeddings", "http://api.example/v1", False),
        ("http://api.example/v10/embeddings", "http://api.example/v1", False),
        ("http://api.example/v1/../admin/embeddings", "http://api.example/v1", False),
        ("http://api.example/v1/%2e%2e/admin/embeddings", "http://api.example/v1", False),
        ("http://api.example.evil/v1/embeddings", "http://api.example/v1", False),
        ("http://api.example@evil.example/v1/embeddings", "http://api.example/v1", False),
        ("http://evil.example/?http://api.example/v1", "http://api.example/v1", False),
        ("http://[::1]:8000/v1/embeddings", "http://[::1]:8000", True),
        ("http://127.0.0.1:8000/v1/embeddings", "http://localhost:8000", False),
    ],
)
def test_url_under_a_prefix(url: str, prefix: str, under: bool) -> None:
    assert url_under(url, prefix) is under


def test_urls_are_checked_after_the_endpoint_path_is_added() -> None:
    access = ModelAccess(urls=("http://embed.internal:8080/v1",))
    access.check(openai(url="http://embed.internal:8080"))  # type: ignore[arg-type]
    access.check(openai(url="http://embed.internal:8080/v1/embeddings"))  # type: ignore[arg-type]
    with pytest.raises(ModelNotAllowed, match="EMBEDSWITCH_MODEL_URLS") as info:
        access.check(openai(url="http://embed.internal:8080/v2"))  # type: ignore[arg-type]
    assert "http://embed.internal:8080/v2/v1/embeddings" in info.value.message
    ModelAccess().check(openai(url="http://anywhere.example"))  # type: ignore[arg-type]
    with pytest.raises(ModelNotAllowed):
        ModelAccess(urls=()).check(openai(url="http://embed.internal:8080"))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["embed.internal", "ftp://embed.internal", "http://"])
def test_bad_url_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="model_urls"):
        from_env({"EMBEDSWITCH_MODEL_URLS": bad})


def test_local_paths_must_resolve_into_a_model_dir(tmp_path: Path) -> None:
    models, outside = tmp_path / "models", tmp_path / "outside"
    (models / "real").mkdir(parents=True)
    outside.mkdir()
    (models / "escape").symlink_to(outside)
    (outside / "back").symlink_to(models / "real")
    access = ModelAccess(model_dirs=(models,))
    assert access.path_allowed(str(models / "real"))
    assert access.path_allowed(str(models / "not-there-yet"))
    assert access.path_allowed(str(outside / "back"))  # a link from outside to a model inside
    assert not access.path_allowed(str(models / "escape"))
    assert not access.path_allowed(str(models / "escape" / "x"))
    assert not access.path_allowed(str(models / ".." / "outside"))
    assert not access.path_allowed(str(models) + "-evil")
    assert not access.path_allowed(str(outside))
    assert not access.path_allowed("/")
    assert not ModelAccess().path_allowed(str(models / "real"))


def test_a_relative_path_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    access = ModelAccess(model_dirs=(Path("models"),))
    assert access.path_allowed("models/m")
    assert not access.path_allowed("m")
    assert os.path.realpath("models/m") == str(tmp_path.resolve() / "models" / "m")


@pytest.mark.parametrize("kind", ["model2vec", "sentence-transformers"])
def test_refusal_is_the_same_whether_the_path_exists(tmp_path: Path, kind: str) -> None:
    (tmp_path / "here").mkdir()
    access = ModelAccess(model_dirs=(tmp_path / "models",))
    messages = []
    for name in ("here", "gone"):
        with pytest.raises(ModelNotAllowed) as info:
            access.check(parse_model_spec({"type": kind, "path": str(tmp_path / name)}))
        error = info.value
        messages.append(
            {"status": error.status, "code": error.code, "message": error.message, **error.context}
        )
    assert messages[0] == {**messages[1], "message": messages[1]["message"].replace("gone", "here")}


def test_wrapped_models_are_checked() -> None:
    bad = {"type": "openai", "url": "http://127.0.0.1:9", "model": "m", "api_key_env": "HOME"}
    for spec in ({"type": "history-mean", "text": bad}, {"type": "none", "dim": 32, "query": bad}):
        with pytest.raises(ModelNotAllowed, match="HOME"):
            ModelAccess().check(parse_model_spec(spec))
    ModelAccess().check(parse_model_spec({"type": "history-mean", "text": "minilm"}))
