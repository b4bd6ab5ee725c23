"""The backfill's pacing: records per second and estimated tokens per minute, each a leaky bucket."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from embedswitch import Engine, EngineConfig
from embedswitch.backfill.throttle import Throttle
from embedswitch.models.tokens import estimate_tokens


def test_no_cap_never_waits() -> None:
    throttle = Throttle(None, None)
    assert [throttle.delay(1000, 10**6, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_tokens_per_minute_hold_each_page_until_the_ones_before_drained() -> None:
    throttle = Throttle(None, 600)  # 10 tokens a second
    assert throttle.delay(5, 100, now=0.0) == 0.0  # the first page goes at once; drains until t=10
    assert throttle.delay(5, 100, now=0.0) == 10.0  # then t=10..20
    assert throttle.delay(5, 50, now=12.0) == 8.0  # t=20..25
    assert throttle.delay(5, 10, now=40.0) == 0.0  # idle since: nothing to wait for; drains until t=41
    assert throttle.delay(5, 0, now=41.0) == 0.0
    assert throttle.wait(41.0) == 0.0  # a page the model doesn't embed costs no tokens


def test_the_stricter_cap_decides() -> None:
    throttle = Throttle(max_rate=2, max_tokens_per_min=6000)  # 2 records/s, 100 tokens/s
    throttle.delay(10, 100, now=0.0)  # records drain until t=5, tokens until t=1
    assert throttle.delay(10, 100, now=0.0) == 5.0
    throttle = Throttle(max_rate=100, max_tokens_per_min=60)  # 1 token/s
    throttle.delay(10, 30, now=0.0)
    assert throttle.delay(10, 30, now=0.0) == 30.0


@pytest.mark.parametrize("field", ["backfill_max_tokens_per_min", "backfill_max_rate"])
def test_a_backfill_over_its_cap_holds_its_next_page(tmp_path: Path, field: str) -> None:
    """Pages of 10 records of 20+ estimated tokens each: under 1 token (or 1 record) a second, the
    second page waits minutes, so the backfill stays at its first page."""
    config = EngineConfig(checkpoint_interval_s=0.2, backfill_batch=10, encode_workers=1, **{field: 1.0})
    texts = [f"record number {i:03} of the test" for i in range(30)]
    assert min(map(estimate_tokens, texts)) > 20
    with Engine.open(tmp_path, config) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"r{i:03}", "text": text} for i, text in enumerate(texts)])
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
        deadline = time.monotonic() + 30
        while (progress := engine.describe_version("c", "v2").progress) is None or progress.done < 10:
            assert time.monotonic() < deadline, "the first page never went"
            time.sleep(0.02)
        time.sleep(0.5)  # room for a second page, were it let through
        assert engine.describe_version("c", "v2").progress.done == 10
