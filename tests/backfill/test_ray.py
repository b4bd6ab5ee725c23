"""The Ray executor on a local Ray cluster: one actor killed mid-page.

Starting Ray takes about 10 s here, so this module starts it once (``ray_cluster``) and holds
the fewest tests that need it; they are ``slow``, and CI runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _executors import backfill_with_a_worker_killed

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local cluster, started by the executor on its first page and shut down after the module."""
    yield
    if ray.is_initialized():
        ray.shutdown()


def test_an_actor_killed_mid_page_costs_only_that_page(tmp_path: Path, ray_cluster: None) -> None:
    backfill_with_a_worker_killed(tmp_path, "ray", workers=2)
