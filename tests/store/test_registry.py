"""Stores are chosen by URI or short name; an unknown one is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedswitch import Engine, InvalidRequest
from embedswitch.store import open_store
from embedswitch.store.sqlite import SqliteStore


def test_sqlite_by_short_name_lives_in_the_data_dir(tmp_path: Path) -> None:
    store = open_store("sqlite", tmp_path)
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "embedswitch.db"
    store.close()


def test_sqlite_by_uri_names_its_file(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/elsewhere.db", tmp_path / "data")
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "elsewhere.db"
    store.close()


def test_unknown_store_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="unknown store 'cassandra'; use one of: sqlite"):
        open_store("cassandra://db:9042/ks", tmp_path)


def test_engine_opens_the_store_it_is_given(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", store=f"sqlite://{tmp_path}/shared.db") as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
    assert (tmp_path / "shared.db").is_file() and not (tmp_path / "data" / "embedswitch.db").exists()
    with Engine.open(tmp_path / "data", store=f"sqlite://{tmp_path}/shared.db") as engine:
        assert [c.name for c in engine.list_collections()] == ["c"]
