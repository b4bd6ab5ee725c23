"""Team-draft interleaving (Radlinski, Kurup and Joachims, CIKM 2008): two rankings merged into one
list whose every hit names the version that contributed it, so a click credits that version."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..results import Hit


def team_draft(
    first: Sequence[Hit], second: Sequence[Hit], names: tuple[str, str], k: int, rng: random.Random
) -> list[Hit]:
    """Team-draft interleaving (Radlinski et al., 2008): the team with fewer picks (a coin flip when
    equal) adds its best hit not yet shown; each hit names the version that picked it."""
    lists = (list(first), list(second))
    cursor = [0, 0]
    picks = [0, 0]
    merged: list[Hit] = []
    shown: set[str] = set()
    while len(merged) < k:
        for team in (0, 1):
            while cursor[team] < len(lists[team]) and lists[team][cursor[team]].id in shown:
                cursor[team] += 1
        open_teams = [team for team in (0, 1) if cursor[team] < len(lists[team])]
        if not open_teams:
            break
        if len(open_teams) == 1:
            team = open_teams[0]
        elif picks[0] != picks[1]:
            team = 0 if picks[0] < picks[1] else 1
        else:
            team = 0 if rng.random() < 0.5 else 1
        hit = lists[team][cursor[team]]
        merged.append(hit.model_copy(update={"version": names[team]}))
        shown.add(hit.id)
        picks[team] += 1
    return merged
