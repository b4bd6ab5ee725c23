"""What a rollout is: its spec and persisted state (``RolloutState``), and the run held in memory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..request_stats import Mark
from ..results import RolloutTransition
from ..specs import RolloutSpec
from ..store.base import RolloutRow

RUNNING = "running"


@dataclass
class RolloutState:
    """What is persisted of a rollout besides its spec."""

    live: str
    step_index: int  # into spec.steps; -1 before the first step
    weights: dict[str, int]  # what the rollout wants the traffic to be
    previous: dict[str, int]  # what it was before the last transition
    transitions: list[RolloutTransition] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "step_index": self.step_index,
            "weights": self.weights,
            "previous": self.previous,
            "transitions": [t.model_dump(mode="json") for t in self.transitions],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RolloutState:
        transitions = [RolloutTransition.model_validate(t) for t in raw["transitions"]]
        return cls(raw["live"], raw["step_index"], raw["weights"], raw["previous"], transitions)


@dataclass
class RolloutRun:
    """A rollout held in memory: running ones are driven by their own thread."""

    collection: str
    id: int
    spec: RolloutSpec
    state: RolloutState
    status: str
    created_at: float
    updated_at: float
    mark: Mark | None = None
    step_since: float = 0.0  # wall clock, for the window shown to people
    step_started: float = 0.0  # monotonic, for step_interval_s
    thread: threading.Thread | None = None

    @classmethod
    def from_row(cls, row: RolloutRow) -> RolloutRun:
        spec = RolloutSpec.model_validate(row.spec)
        state = RolloutState.from_json(row.state)
        return cls(row.collection, row.id, spec, state, row.status, row.created_at, row.updated_at)


def step_weights(live: str, to: str, percent: int) -> dict[str, int]:
    """The weights of a step: ``percent`` on ``to``, the rest on ``live``."""
    return {to: 100} if percent >= 100 else {live: 100 - percent, to: percent}


def traffic_reason(id: int, entry: RolloutTransition) -> str:
    """The reason recorded with the weight change in the traffic history."""
    if entry.outcome in ("advanced", "completed"):
        return f"rollout #{id} step {entry.step}%: {entry.reason}"
    return f"rollout #{id} {entry.outcome.replace('_', ' ')}: {entry.reason}"


def share(weights: dict[str, int], version: str) -> int:
    total = sum(weights.values())
    return round(100 * weights.get(version, 0) / total) if total else 0
