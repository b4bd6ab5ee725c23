"""The walkthrough of docs/experiments.md runs, and prints what the page says it prints."""

from __future__ import annotations

import pytest
from conftest import REPO, needs_scifact
from test_readme import expected_outputs, run_python

PAGE = (REPO / "docs" / "experiments.md").read_text()


def walkthrough_blocks() -> list[str]:
    section = PAGE.split("\n## Walkthrough\n", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```python\n")[1:]
    return [block.split("```", 1)[0] for block in blocks]


def test_the_walkthrough_has_the_steps() -> None:
    (code,) = walkthrough_blocks()
    for step in ("engine.evaluate(", "shadow=", "interleave=", ".ab.comparisons", "start_rollout("):
        assert step in code, step


@needs_scifact
def test_the_walkthrough_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the page reads ../shared/data/scifact from the repository root
    (code,) = walkthrough_blocks()
    assert run_python(code).splitlines() == expected_outputs(code)
