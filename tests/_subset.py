"""A small SciFact data dir shared by the simulation and rollout tests: built once per test process,
copied for each module (embedding it with ``minilm`` takes most of a minute on two cores).

Collection ``sci`` holds the documents judged for the first ``QUERIES`` test queries plus
``EXTRA_DOCS`` others, and four ready versions: ``v1`` (``minilm-static``, all traffic), ``twin``
(``minilm-static`` again: identical rankings), ``hash`` (``hashing``: clearly worse) and ``mini``
(``minilm``: clearly better).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _encoded import EncodedCache
from conftest import FAST, SCIFACT

from embedswitch import Engine
from embedswitch.evaluation.simulation import JudgedSet, judged_subset

COLLECTION = "sci"
QUERIES = 80
EXTRA_DOCS = 120
VERSIONS = {"v1": "minilm-static", "twin": "minilm-static", "hash": "hashing", "mini": "minilm"}


_built: dict[str, Path] = {}


def subset() -> JudgedSet:
    return judged_subset(SCIFACT, queries=QUERIES, extra_docs=EXTRA_DOCS, seed=0)


def subset_data_dir(factory: pytest.TempPathFactory, encoded: EncodedCache) -> Path:
    """A fresh copy of the shared data dir (built on first use, its MiniLM vectors through
    ``encoded``), for one module's engine."""
    if "dir" not in _built:
        built = factory.mktemp("scifact-subset") / "data"
        with encoded.installed(), Engine.open(built, FAST) as engine:
            engine.create_collection(COLLECTION, {"name": "v1", "model": VERSIONS["v1"]})
            engine.upsert(COLLECTION, subset().records)
            for name, model in VERSIONS.items():
                if name != "v1":
                    engine.add_version(COLLECTION, {"name": name, "model": model})
            for name in VERSIONS:
                engine.wait_ready(COLLECTION, name, timeout_s=900)
        _built["dir"] = built
    copy = factory.mktemp("scifact-copy") / "data"
    shutil.copytree(_built["dir"], copy)
    return copy
