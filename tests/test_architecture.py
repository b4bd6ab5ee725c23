"""The shape of the package: no import cycles (lazy and TYPE_CHECKING imports counted), the layer
contracts of ``.importlinter`` hold, and no module outgrows the size budget."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from _architecture import import_cycles, import_graph, sizes

REPO = Path(__file__).resolve().parents[1]


def test_no_import_cycles() -> None:
    assert import_cycles(import_graph()) == []


def test_the_cycle_counter_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert import_cycles(graph) == [["a", "b", "c"], ["e"]]


def test_layer_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is a dev dependency (pip install -e '.[dev]')"
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # check this checkout, wherever it is installed from
    done = subprocess.run([lint_imports], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]


def test_modules_stay_under_600_lines() -> None:
    assert sizes().over(600) == {}
