"""The delays of a background loop that retries: growing, capped, jittered, reset by a success."""

from __future__ import annotations

from embedswitch._backoff import Backoff


def test_delays_double_within_jitter_up_to_the_cap_and_reset() -> None:
    backoff = Backoff(initial_s=1.0, max_s=10.0)
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 10, 10, 10, 10]
    pairs = zip(delays, ceilings, strict=True)
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in pairs), delays
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_parallel_loops_do_not_retry_in_step() -> None:
    loops = [Backoff() for _ in range(20)]
    firsts = {round(loop.next_delay(), 6) for loop in loops}
    assert len(firsts) > 1
