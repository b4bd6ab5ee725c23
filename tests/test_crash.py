"""kill -9 of a real server process under concurrent writes, several rounds, then a full check."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
from _checks import assert_end_state
from _endpoint import Faults, endpoint
from conftest import ServerProcess

from embedswitch import Engine, EngineConfig
from embedswitch.store import Store, open_store

FAST = EngineConfig(checkpoint_interval_s=0.2)


class Writers:
    """Threads sending upsert batches and deletes; they remember what was acknowledged."""

    def __init__(self, url: str, round_no: int, acked: dict[str, str | None], threads: int = 4) -> None:
        self.url = url
        self.round_no = round_no
        self.acked = acked
        self.in_flight: list[dict[str, str | None]] = []  # batches sent but not acknowledged
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t,)) for t in range(threads)]

    def _run(self, t: int) -> None:
        rng = random.Random(self.round_no * 100 + t)
        ids = [f"t{t}-{i}" for i in range(60)]  # each thread owns its ids, so "latest" is defined
        with httpx.Client(base_url=self.url, timeout=30) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                present = [i for i in ids if self.acked.get(i) is not None]
                if present and rng.random() < 0.25:
                    rid = rng.choice(present)
                    batch: dict[str, str | None] = {rid: None}
                    method, path, body = "DELETE", f"/v1/collections/c/records/{rid}", None
                else:
                    chosen = rng.sample(ids, rng.randint(1, 8))
                    batch = {i: f"record {i} round {self.round_no} write {n}" for i in chosen}
                    records = [{"id": i, "text": text} for i, text in batch.items()]
                    method, path, body = "PUT", "/v1/collections/c/records", {"records": records}
                with self.lock:
                    self.in_flight.append(batch)
                try:
                    response = http.request(method, path, json=body)
                except httpx.TransportError:
                    return  # the server died with this batch in flight
                assert response.status_code == 200, response.text
                with self.lock:
                    self.in_flight.remove(batch)
                    self.acked.update(batch)

    def __enter__(self) -> Writers:
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(timeout=60)


def _reconcile(store: Store, acked: dict[str, str | None], in_flight: list[dict[str, str | None]]) -> None:
    """Acknowledged writes are all there; each unacknowledged batch is there entirely or not at all."""
    head = store.get_collection("c").head_seq
    live = {r.id: r.text for r in store.scan_records("c", head, None, 10**9)}
    pending_ids = {i for batch in in_flight for i in batch}
    for rid, text in acked.items():
        if rid not in pending_ids:
            assert live.get(rid) == text, f"acknowledged write to {rid} lost: {live.get(rid)!r} != {text!r}"
    for batch in in_flight:
        applied = [live.get(i) == text for i, text in batch.items()]
        assert all(applied) or not any(applied), f"half-applied batch {batch}"
        if all(applied):
            acked.update(batch)
    extra = set(live) - {i for i, t in acked.items() if t is not None}
    assert not extra, f"records nobody wrote: {sorted(extra)[:5]}"


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Engine.open(data, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
    acked: dict[str, str | None] = {}
    rng = random.Random(1)
    for round_no in range(4):
        server = ServerProcess(data).start()
        try:
            with Writers(server.url, round_no, acked) as writers:
                time.sleep(rng.uniform(0.3, 1.5))
                server.kill()
        finally:
            server.stop()
        assert sum(1 for t in acked.values() if t is not None) > 0
        with Engine.open(data, FAST) as engine:
            _reconcile(engine.store, acked, writers.in_flight)
            assert_end_state(engine, "c")


def test_kill_9_during_backfill_resumes_and_converges(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Engine.open(data, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"t0-{i}", "text": f"initial {i}"} for i in range(60)])
        engine.upsert("c", [{"id": f"seed{i:04}", "text": f"seed record {i}"} for i in range(3000)])
    acked: dict[str, str | None] = {f"t0-{i}": f"initial {i}" for i in range(60)}
    acked.update({f"seed{i:04}": f"seed record {i}" for i in range(3000)})
    slow = {"EMBEDSWITCH_BACKFILL_MAX_RATE": "1500", "EMBEDSWITCH_BACKFILL_BATCH": "50"}
    server = ServerProcess(data, env=slow).start()
    try:
        httpx.post(
            f"{server.url}/v1/collections/c/versions",
            json={"name": "v2", "model": {"type": "hashing", "seed": 2}},
        ).raise_for_status()
        with Writers(server.url, 1, acked, threads=2) as writers:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                done = httpx.get(f"{server.url}/v1/collections/c/versions/v2").json()["progress"]["done"]
                if done >= random.Random(2).randint(600, 1800):
                    break
                time.sleep(0.05)
            server.kill()
    finally:
        server.stop()
    with Engine.open(data, FAST) as engine:
        _reconcile(engine.store, acked, writers.in_flight)
        backfill = engine.collection("c").get_version("v2").backfill
        assert backfill is not None and backfill.state.done > 0, "backfill progress was not persisted"
        engine.wait_ready("c", "v2", 120)
        assert_end_state(engine, "c")


def _progress(server: ServerProcess) -> dict[str, int]:
    info = httpx.get(f"{server.url}/v1/collections/c/versions/v2", timeout=30).json()
    return {"done": info["progress"]["done"], "total": info["progress"]["total"], "records": info["records"]}


def _watch_until_kill(server: ServerProcess, seen: int, linger_s: float) -> int:
    """Poll the backfill's ``done`` until a page more than ``seen`` is reported (or it finished),
    then for ``linger_s`` more; kill -9 the server; return the most it reported."""
    reported, deadline = seen, time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = _progress(server)
        reported = max(reported, progress["done"])
        if reported > seen or reported == progress["total"]:
            break
        time.sleep(0.05)
    until = time.monotonic() + linger_s
    while time.monotonic() < until:
        reported = max(reported, _progress(server)["done"])
        time.sleep(0.05)
    server.kill()
    return reported


def test_kill_9_during_a_slow_backfill_keeps_the_progress_it_reported(tmp_path: Path) -> None:
    """A backfill whose model takes about half a second per page, killed -9 at random moments
    three times: after each restart ``done`` is at least what the server reported before the kill,
    and the pages it counts are in the index; at the end every version holds every record. The
    checkpoint interval is an hour, so only the pages' own durability can keep the progress. The
    model is the fake ``_endpoint`` (hashing vectors after a sleep per request), since
    no local model is slow on demand."""
    data = tmp_path / "data"
    with Engine.open(data, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"seed{i:03}", "text": f"seed record {i}"} for i in range(160)])
    acked: dict[str, str | None] = {f"seed{i:03}": f"seed record {i}" for i in range(160)}
    env = {
        "EMBEDSWITCH_CHECKPOINT_INTERVAL_S": "3600",
        "EMBEDSWITCH_BACKFILL_BATCH": "16",
        "EMBEDSWITCH_ENCODE_WORKERS": "1",
    }
    rng, reported = random.Random(5), 0
    with endpoint(Faults(delay_s=0.5)) as url:
        for round_no in range(3):
            server = ServerProcess(data, env=env).start()
            try:
                if round_no == 0:
                    spec = {"name": "v2", "model": {"type": "openai", "url": url, "model": "slow"}}
                    added = httpx.post(f"{server.url}/v1/collections/c/versions", json=spec, timeout=60)
                    assert added.status_code == 202, added.text
                after_restart = _progress(server)
                assert after_restart["done"] >= reported, f"round {round_no}: {after_restart} < {reported}"
                assert after_restart["records"] >= after_restart["done"], after_restart
                with Writers(server.url, round_no, acked, threads=1) as writers:
                    reported = _watch_until_kill(server, after_restart["done"], rng.uniform(0, 1.0))
            finally:
                server.stop()
            store = open_store("sqlite", data)  # the store alone: no version runs between rounds
            try:
                _reconcile(store, acked, writers.in_flight)
            finally:
                store.close()
        assert reported > 0
        with Engine.open(data, FAST) as engine:
            backfill = engine.collection("c").get_version("v2").backfill
            assert backfill is not None and backfill.state.done >= reported
            engine.wait_ready("c", "v2", 120)
            assert_end_state(engine, "c")
