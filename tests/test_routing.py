from collections import Counter

import pytest

from embedswitch.routing import BUCKETS, Router, bucket_of


def test_bucket_is_stable_and_spread() -> None:
    assert bucket_of("user-1") == bucket_of("user-1")
    counts = Counter(bucket_of(f"k{i}") * 10 // BUCKETS for i in range(20_000))
    assert all(1_700 < c < 2_300 for c in counts.values())


def test_single_version_takes_everything() -> None:
    router = Router({"v1": 100}, ("v1",))
    assert {router.pick(None), router.pick("x")} == {"v1"}


def test_sticky_keys_follow_weights() -> None:
    router = Router({"v1": 90, "v2": 10}, ("v2", "v1"))
    picks = Counter(router.pick(f"user{i}") for i in range(20_000))
    assert 0.08 < picks["v2"] / 20_000 < 0.12
    assert all(router.pick(f"user{i}") == router.pick(f"user{i}") for i in range(500))


def test_ramp_is_monotone_for_the_new_version() -> None:
    keys = [f"user{i}" for i in range(5_000)]
    order = ("v2", "v1")
    on_v2 = set()
    for weight in (1, 10, 25, 50, 90, 100):
        router = Router({"v1": 100 - weight, "v2": weight}, order)
        now = {k for k in keys if router.pick(k) == "v2"}
        assert on_v2 <= now, f"a key left v2 when its weight grew to {weight}"
        on_v2 = now
    assert on_v2 == set(keys)


def test_random_split_without_key() -> None:
    router = Router({"v1": 50, "v2": 50}, ("v2", "v1"))
    picks = Counter(router.pick(None) for _ in range(4_000))
    assert 1_700 < picks["v1"] < 2_300


def test_zero_weights_rejected() -> None:
    with pytest.raises(ValueError):
        Router({"v1": 0}, ("v1",))
