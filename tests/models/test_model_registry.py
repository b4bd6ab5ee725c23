"""Specs: short names, spec dicts, clear errors, labels, and the process-wide model cache."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from embedswitch._errors import UnknownModel
from embedswitch.models import (
    EmbeddingModel,
    HashingSpec,
    MiniLMSpec,
    MiniLMStaticSpec,
    Model2VecSpec,
    OpenAISpec,
    SentenceTransformersSpec,
    load_model,
    model_label,
    parse_model_spec,
    spec_to_dict,
)
from embedswitch.models.hashing import HashingModel


@pytest.mark.parametrize(
    ("name", "expected"),
    [("hashing", HashingSpec()), ("minilm", MiniLMSpec()), ("minilm-static", MiniLMStaticSpec())],
)
def test_short_names_map_to_default_specs(name: str, expected: Any) -> None:
    assert parse_model_spec(name) == expected
    assert parse_model_spec(f"  {name} ") == expected
    assert model_label(expected) == name


def test_defaults_are_the_documented_ones() -> None:
    assert spec_to_dict(HashingSpec()) == {"type": "hashing", "dim": 256, "seed": 0}
    assert spec_to_dict(MiniLMSpec()) == {
        "type": "minilm",
        "batch_size": 64,
        "max_seq_length": 256,
        "device": "cpu",
    }
    assert spec_to_dict(MiniLMStaticSpec()) == {"type": "minilm-static", "pca_dims": 256}
    openai = OpenAISpec(url="http://localhost:1", model="m")
    assert (openai.api_key_env, openai.dimensions, openai.batch_size, openai.timeout_s) == (
        None,
        None,
        128,
        30.0,
    )
    st = SentenceTransformersSpec(path="/models/x")
    assert (st.batch_size, st.max_seq_length, st.query_prefix, st.document_prefix, st.device) == (
        64,
        None,
        "",
        "",
        "cpu",
    )


@pytest.mark.parametrize(
    "value",
    [
        {"type": "hashing", "dim": 64, "seed": 3},
        {"type": "minilm", "batch_size": 8},
        {"type": "minilm-static", "pca_dims": 128},
        {"type": "sentence-transformers", "path": "/m", "query_prefix": "query: ", "max_seq_length": 128},
        {"type": "model2vec", "path": "/m2v"},
        {"type": "openai", "url": "http://h:1", "model": "m", "api_key_env": "KEY", "dimensions": 64},
    ],
)
def test_spec_dicts_round_trip(value: dict[str, Any]) -> None:
    spec = parse_model_spec(value)
    assert spec.type == value["type"]
    as_dict = spec_to_dict(spec)
    assert as_dict["type"] == value["type"]
    assert {k: as_dict[k] for k in value} == value
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert parse_model_spec(as_dict) == spec
    assert parse_model_spec(json.dumps(value)) == spec
    assert parse_model_spec(spec) is spec


def test_labels_of_non_default_specs_are_their_type() -> None:
    assert model_label(parse_model_spec({"type": "hashing", "seed": 1})) == "hashing"
    assert model_label(MiniLMSpec(max_seq_length=128)) == "minilm"
    assert model_label(Model2VecSpec(path="/x")) == "model2vec"
    assert model_label(SentenceTransformersSpec(path="/x")) == "sentence-transformers"


def test_a_default_spec_written_out_gets_the_short_name() -> None:
    assert model_label(parse_model_spec({"type": "hashing", "dim": 256})) == "hashing"
    assert model_label(parse_model_spec({"type": "minilm-static", "pca_dims": 256})) == "minilm-static"


def test_specs_are_frozen() -> None:
    spec = HashingSpec()
    with pytest.raises(ValueError, match="frozen"):
        spec.dim = 8


@pytest.mark.parametrize("value", ["bert", "", "HASHING2", "openai"])
def test_unknown_names_list_the_known_ones(value: str) -> None:
    with pytest.raises(UnknownModel) as info:
        parse_model_spec(value)
    message = info.value.message
    assert repr(value) in message
    for known in ("hashing", "minilm", "minilm-static", "sentence-transformers", "model2vec", "openai"):
        assert known in message
    assert info.value.code == "unknown_model"
    assert info.value.status == 422


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"type": "bert"}, "unknown model type 'bert'"),
        ({"dim": 64}, "no 'type'"),
        ({"type": ["hashing"]}, "unknown model type"),
        (42, "not int"),
        ("{not json", "not valid JSON"),
    ],
)
def test_unknown_types_are_unknown_model(value: Any, needle: str) -> None:
    with pytest.raises(UnknownModel, match="minilm-static") as info:
        parse_model_spec(value)
    assert needle in info.value.message


@pytest.mark.parametrize(
    ("value", "needles"),
    [
        ({"type": "hashing", "dim": 4}, ["dim", "greater than or equal to 8"]),
        ({"type": "hashing", "dim": 5000}, ["dim", "less than or equal to 4096"]),
        ({"type": "hashing", "dim": "wide"}, ["dim", "valid integer", "'wide'"]),
        ({"type": "hashing", "dims": 64}, ["unknown field 'dims'", "dim, seed"]),
        ({"type": "sentence-transformers"}, ["path", "missing"]),
        ({"type": "openai", "url": "http://h", "model": "m", "api_key": "sk-x"}, ["unknown field 'api_key'"]),
        (
            {"type": "openai", "url": "http://h", "model": "m", "timeout_s": 0},
            ["timeout_s", "greater than 0"],
        ),
        ({"type": "minilm-static", "pca_dims": 1000}, ["pca_dims", "384"]),
        # an unbounded timeout overflowed the socket's (500 OverflowError); types are strict, as the API's
        ({"type": "openai", "url": "http://h", "model": "m", "timeout_s": 4e16}, ["timeout_s", "600"]),
        ({"type": "none", "dim": 4, "normalize": 0}, ["normalize", "boolean"]),
        ({"type": "hashing", "dim": "256"}, ["dim", "integer"]),
    ],
)
def test_bad_fields_name_the_field_and_the_problem(value: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(UnknownModel) as info:
        parse_model_spec(value)
    message = info.value.message
    assert f"invalid {value['type']!r} model spec" in message
    for needle in needles:
        assert needle in message


def test_several_bad_fields_are_all_reported() -> None:
    with pytest.raises(UnknownModel) as info:
        parse_model_spec({"type": "hashing", "dim": 1, "seed": "x", "colour": "red"})
    message = info.value.message
    assert "dim:" in message
    assert "seed:" in message
    assert "'colour'" in message


def test_load_model_accepts_names_dicts_and_specs_and_caches() -> None:
    by_name = load_model("hashing")
    assert isinstance(by_name, HashingModel)
    assert isinstance(by_name, EmbeddingModel)
    assert load_model({"type": "hashing"}) is by_name
    assert load_model(HashingSpec(dim=256, seed=0)) is by_name
    assert load_model({"type": "hashing", "seed": 1}) is not by_name


def test_load_model_loads_once_when_threads_race() -> None:
    spec = {"type": "hashing", "dim": 96, "seed": 123456}
    barrier = threading.Barrier(8)
    loaded: list[EmbeddingModel] = []

    def work() -> None:
        barrier.wait()
        loaded.append(load_model(spec))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 8
    assert all(model is loaded[0] for model in loaded)


def test_load_model_rejects_bad_specs() -> None:
    with pytest.raises(UnknownModel, match="unknown model 'nope'"):
        load_model("nope")


@pytest.mark.parametrize(
    "value",
    [
        {"type": "sentence-transformers", "path": "/nonexistent/embedswitch-model"},
        {"type": "model2vec", "path": "/nonexistent/embedswitch-model"},
    ],
)
def test_missing_local_model_directory_is_unknown_model(value: dict[str, Any]) -> None:
    with pytest.raises(UnknownModel, match="never downloads"):
        load_model(value)


@pytest.mark.parametrize("kind", ["sentence-transformers", "model2vec"])
def test_a_directory_without_a_model_is_unknown_model(kind: str, tmp_path: Path) -> None:
    """The libraries raise ValueError, OSError...: an API request naming such a directory was a 500."""
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(UnknownModel, match="could not load"):
        load_model({"type": kind, "path": str(tmp_path)})
