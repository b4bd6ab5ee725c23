"""Several ``embedswitch serve`` processes on one real PostgreSQL (``embedswitch/cluster.py``).

Each test starts real server processes (``ServerProcess``) on a database of its own, drives them
over HTTP and checks what every process answers and what the database holds at the end.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _checks import assert_end_state
from _endpoint import Faults, endpoint, spec
from conftest import ServerProcess

from embedswitch import Client, Engine, EngineConfig, VersionNotFound
from embedswitch.models import load_model

pytestmark = pytest.mark.slow

V1 = {"name": "v1", "model": {"type": "hashing", "dim": 64, "seed": 1}}
V2 = {"name": "v2", "model": {"type": "hashing", "dim": 64, "seed": 2}}
FIXED = 200  # records doc-0..199 keep their text: search scores are checked against them


def text(i: int, rev: int = 0) -> str:
    words = ["protein", "cell", "gene", "virus", "immune", "neuron", "cancer", "drug", "brain", "blood"]
    rng = random.Random(i * 1000 + rev)
    return " ".join(rng.choice(words) for _ in range(8)) + f" r{i} v{rev}"


@pytest.fixture
def replicas(pg_uri: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two serving processes on one database, each with its own data dir."""
    started = []
    try:
        for n in range(2):
            env = {
                "EMBEDSWITCH_STORE": pg_uri,
                "EMBEDSWITCH_MIN_SEQ_TIMEOUT_S": "30",
                "EMBEDSWITCH_BACKFILL_BATCH": "20",
            }
            started.append(
                ServerProcess(tmp_path / f"replica{n}", env=env, log=tmp_path / f"r{n}.log").start()
            )
        yield started
    finally:
        for server in started:
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)  # a test may leave one paused
            server.stop()


def wait_for(check: Any, timeout_s: float = 60, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not hold within {timeout_s} s")


def end_state(pg_uri: str, tmp_path: Path) -> dict[str, int]:
    """Open the database from this process once the servers are gone, and check every version."""
    with Engine.open(tmp_path / "checker", EngineConfig(checkpoint_interval_s=0.2), store=pg_uri) as engine:
        return assert_end_state(engine, "articles")


def test_rollout_under_load_across_two_processes(
    replicas: list[ServerProcess],
    pg_uri: str,
    tmp_path: Path,
) -> None:
    a, b = replicas
    ca, cb = clients(a, b)
    ca.create_collection("articles", V1)
    for start in range(0, 400, 100):
        ca.upsert("articles", [{"id": f"doc-{i}", "text": text(i)} for i in range(start, start + 100)])
    models = {"v1": load_model(V1["model"]), "v2": load_model(V2["model"])}
    stop = threading.Event()
    failures: list[str] = []
    answered: dict[str, int] = {}
    writes: list[int] = []

    def search_load(url: str, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                query = text(rng.randrange(FIXED), 0)
                body: dict[str, Any] = {"text": query, "k": 5}
                if rng.random() < 0.5:
                    body["key"] = f"user-{rng.randrange(50)}"
                reply = http.post("/v1/collections/articles/search", json=body)
                if reply.status_code >= 500:
                    failures.append(f"{url} search {reply.status_code}: {reply.text}")
                    continue
                if reply.status_code != 200:
                    failures.append(f"{url} search {reply.status_code}: {reply.text}")
                    continue
                result = reply.json()
                answered[result["version"]] = answered.get(result["version"], 0) + 1
                model = models[result["version"]]
                q = model.encode([query], purpose="query")[0]
                for hit in result["hits"]:
                    rid = int(hit["id"].split("-")[1])
                    if rid < FIXED:  # texts that never change: the score is that model's exactly
                        want = float(q @ model.encode([text(rid, 0)], purpose="document")[0])
                        if abs(want - hit["score"]) > 1e-4:
                            failures.append(f"mixed versions: {hit} by {result['version']}, want {want}")

    def write_load(url: str, seed: int) -> None:
        rng = random.Random(seed)
        rev = 0
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                rev += 1
                i = rng.randrange(FIXED, 400)
                if rng.random() < 0.2:
                    reply = http.delete(f"/v1/collections/articles/records/doc-{i}")
                else:
                    record = {"id": f"doc-{i}", "text": text(i, rev * 10 + seed)}
                    reply = http.put("/v1/collections/articles/records", json={"records": [record]})
                if reply.status_code != 200 and not (reply.status_code == 404 and "deleted" in reply.text):
                    failures.append(
                        f"{url} write {reply.status_code}: {reply.text}"
                    )  # a 404: deleted already
                writes.append(reply.status_code)
                time.sleep(0.01)

    threads = [threading.Thread(target=search_load, args=(s.url, n)) for n, s in enumerate([a, b, a, b])]
    threads += [threading.Thread(target=write_load, args=(s.url, 10 + n)) for n, s in enumerate([a, b])]
    for thread in threads:
        thread.start()
    try:
        ca.add_version("articles", V2)  # through A ...
        wait_for(lambda: cb.describe_version("articles", "v2").state == "ready", 120, "v2 ready via B")
        cb.set_traffic("articles", {"v1": 50, "v2": 50})  # ... ramped through B
        wait_for(lambda: ca.traffic("articles").weights == {"v1": 50, "v2": 50}, 10, "A sees B's weights")
        keys = [f"user-{n}" for n in range(40)]
        sticky_a = [ca.search("articles", "cell gene", key=key).version for key in keys]
        sticky_b = [cb.search("articles", "cell gene", key=key).version for key in keys]
        assert sticky_a == sticky_b, "a sticky key got different versions from the two processes"
        assert set(sticky_a) == {"v1", "v2"}
        ca.promote("articles", "v2")
        wait_for(lambda: cb.traffic("articles").weights == {"v2": 100}, 10, "B sees the promotion")
        cb.rollback("articles")
        wait_for(lambda: ca.traffic("articles").weights == {"v1": 50, "v2": 50}, 10, "A sees the rollback")
        time.sleep(1)
        ca.promote("articles", "v2")
        wait_for(lambda: cb.traffic("articles").weights == {"v2": 100}, 10, "B sees the promotion")
        time.sleep(1)
        cb.retire("articles", "v1")
        wait_for(lambda: [v.name for v in ca.list_versions("articles")] == ["v2"], 10, "A sees v1 retired")
        time.sleep(2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:5]
    assert answered.get("v1") and answered.get("v2"), answered
    assert len(writes) > 100, "the stream of upserts and deletes did not run"
    # read-your-writes across processes: written through A, searched through B with its seq
    ack = ca.upsert("articles", [{"id": "fresh", "text": "a completely fresh zebra abstract"}])
    hits = cb.search("articles", "completely fresh zebra", min_seq=ack.seq).hits
    assert hits[0].id == "fresh"
    for server in replicas:
        server.stop()
    checked = end_state(pg_uri, tmp_path)
    assert set(checked) == {"v2"}


def test_failover_after_kill_of_the_leader_mid_backfill(
    replicas: list[ServerProcess],
    pg_uri: str,
    tmp_path: Path,
) -> None:
    """The backfill's leader is killed with -9 mid-way: the other process takes its lease over, goes
    on from the saved cursor (the texts embedded in all stay near the total, not twice it), and
    every acknowledged write is in the end."""
    a, b = replicas
    ca, cb = clients(a, b)
    ca.create_collection("articles", V1)
    total = 600
    for start in range(0, total, 200):
        ca.upsert("articles", [{"id": f"doc-{i}", "text": text(i)} for i in range(start, start + 200)])
    faults = Faults(delay_s=0.15)
    with endpoint(faults) as url:
        ca.add_version("articles", {"name": "v2", "model": spec(url)})
        leader = wait_for(lambda: leader_of(pg_uri, "version:articles/v2"), 30, "a leader of v2")
        wait_for(lambda: 100 < progress(cb) < total - 150, 120, "the backfill half way")
        victim, survivor = (a, b) if leader == pid_of(a) else (b, a)
        other = cb if survivor is b else ca
        stop = threading.Event()
        acked: list[int] = []
        failures: list[str] = []
        writers = [
            threading.Thread(target=write, args=(s.url, n, stop, acked, failures))
            for n, s in enumerate(replicas)
        ]
        for thread in writers:  # writes through both, the victim's until it dies: mid-apply
            thread.start()
        time.sleep(0.5)
        victim.kill()
        done_at_kill = progress(other)
        time.sleep(0.5)
        stop.set()
        for thread in writers:
            thread.join()
        assert not failures, failures[:3]
        info = wait_for(lambda: ready(other, "v2"), 180, "v2 ready after the failover")
        assert acked and info.applied_seq >= max(acked)
        assert done_at_kill > 100
        embedded = faults.texts
        assert embedded < total + 300, f"the backfill started again: {embedded} texts embedded for {total}"
        survivor.stop()
        end_state(pg_uri, tmp_path)  # while the endpoint still answers: the check embeds the texts


def write(url: str, seed: int, stop: threading.Event, acked: list[int], failures: list[str]) -> None:
    """Upserts through ``url`` until ``stop``; the seq of each acknowledged one goes to ``acked``."""
    n = 0
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            n += 1
            record = {"id": f"w{seed}-{n % 30}", "text": text(5000 + seed * 100 + n, n)}
            try:
                reply = http.put("/v1/collections/articles/records", json={"records": [record]})
            except httpx.HTTPError:
                return  # this process died
            if reply.status_code == 200:
                acked.append(reply.json()["seq"])
            else:
                failures.append(f"{url} write {reply.status_code}: {reply.text}")


def test_paused_leader_writes_nothing_after_losing_its_lease(
    pg_uri: str,
    tmp_path: Path,
) -> None:
    """A leader stopped with SIGSTOP past its lease's TTL loses the lease to the other process;
    resumed with SIGCONT, its workers write nothing (every write is fenced by the lease's epoch)."""
    uri = pg_uri + ("&" if "?" in pg_uri else "?") + "lease_ttl_s=2"
    env = {"EMBEDSWITCH_STORE": uri, "EMBEDSWITCH_MIN_SEQ_TIMEOUT_S": "30"}
    a = ServerProcess(tmp_path / "a", env=env, log=tmp_path / "a.log").start()
    b = None
    try:
        (ca,) = clients(a)
        ca.create_collection("articles", V1)
        ca.upsert("articles", [{"id": f"doc-{i}", "text": text(i)} for i in range(100)])
        b = ServerProcess(tmp_path / "b", env=env, log=tmp_path / "b.log").start()
        (cb,) = clients(b)
        assert leader_of(pg_uri, "version:articles/v1") == pid_of(a)
        audit = install_audit(pg_uri)
        os.kill(a.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        wait_for(lambda: leader_of(pg_uri, "version:articles/v1") == pid_of(b), 60, "B takes the lease")
        acks = [cb.upsert("articles", [{"id": f"new-{i}", "text": text(1000 + i)}]) for i in range(20)]
        assert cb.search("articles", text(1019), min_seq=acks[-1].seq).hits[0].id == "new-19"
        resumed_at = time.time()
        os.kill(a.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        time.sleep(5)  # A's workers wake up, try to write, and are refused
        writers = audit_writers(pg_uri, audit, resumed_at)
        assert pid_of(a) not in writers, f"the old leader wrote after it lost its lease: {writers}"
    finally:
        for server in (a, b):
            if server is not None:
                server.stop()
    end_state(pg_uri, tmp_path)


# --- what the database says ----------------------------------------------------------------------


_open: list[Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def clients(*servers: ServerProcess) -> list[Client]:
    """A client per server, closed after the test."""
    found = [Client(server.url) for server in servers]
    _open.extend(found)
    return found


def pid_of(server: ServerProcess) -> int:
    assert server.proc is not None
    return server.proc.pid


def leader_of(uri: str, lease: str) -> int | None:
    """The OS process id of the lease's holder (its lease connection's application name)."""
    import psycopg

    with psycopg.connect(uri) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM es_leases l JOIN pg_stat_activity a ON a.pid = l.holder_pid "
            "WHERE l.name = %s",
            (lease,),
        ).fetchone()
    if row is None or not row[0].startswith("embedswitch-"):
        return None
    return int(row[0].split("-")[1])


def install_audit(uri: str) -> str:
    """Record which process (its connection's application name) writes the version's progress,
    its applied position and its vectors from now on."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE es_test_audit(tbl text, app text, at timestamptz DEFAULT clock_timestamp())"
        )
        conn.execute(
            "CREATE FUNCTION es_test_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO es_test_audit(tbl, app) "
            "VALUES (TG_TABLE_NAME, current_setting('application_name')); "
            "RETURN NULL; END $$"
        )
        tables = [row[0] for row in conn.execute("SELECT table_name FROM es_indexes").fetchall()]
        for table in [*tables, "es_versions", "es_applied"]:
            conn.execute(
                f"CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION es_test_audit()"
            )
    return "es_test_audit"


def audit_writers(uri: str, table: str, since: float) -> dict[int, set[str]]:
    """Per writing process (its OS pid), the tables it wrote since ``since``."""
    import psycopg

    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            f"SELECT DISTINCT app, tbl FROM {table} WHERE at >= to_timestamp(%s)", (since,)
        ).fetchall()
    found: dict[int, set[str]] = {}
    for app, tbl in rows:
        if app.startswith("embedswitch-"):
            found.setdefault(int(app.split("-")[1]), set()).add(tbl)
    return found


def progress(client: Client) -> int:
    try:
        info = client.describe_version("articles", "v2")
    except VersionNotFound:  # this process has not taken in the new version yet
        return 0
    return info.progress.done if info.progress is not None else 0


def ready(client: Client, version: str) -> Any:
    info = client.describe_version("articles", version)
    return info if info.state == "ready" and info.lag == 0 else None


def test_a_gated_rollout_started_through_one_process_runs_once_across_the_cluster(
    replicas: list[ServerProcess],
    pg_uri: str,
) -> None:
    """The rollout's controller runs in the holder of the collection's rollout lease, whichever
    process was asked; its gates count the requests both processes answered."""
    a, b = replicas
    ca, cb = clients(a, b)
    ca.create_collection("articles", V1)
    ca.upsert("articles", [{"id": f"doc-{i}", "text": text(i)} for i in range(100)])
    ca.add_version("articles", V2)
    wait_for(lambda: cb.describe_version("articles", "v2").state == "ready", 60, "v2 ready via B")
    holder = wait_for(lambda: leader_of(pg_uri, "rollouts:articles"), 30, "a rollout controller")
    asked, other = (cb, ca) if holder == pid_of(a) else (ca, cb)  # ask the process that does not lead
    spec = {"to": "v2", "steps": [50, 100], "min_requests": 20, "gates": {"max_error_rate": 0.05}}
    started = asked.start_rollout("articles", spec)
    stop = threading.Event()

    def load(client: Client) -> None:
        while not stop.is_set():
            client.search("articles", "cell gene", key=f"user-{random.randrange(1000)}")

    threads = [threading.Thread(target=load, args=(client,)) for client in clients(a, b)]
    for thread in threads:
        thread.start()
    try:
        done = other.wait_rollout("articles", started.id, timeout_s=120)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert done.status == "completed", done
    outcomes = [t.outcome for t in done.transitions]
    assert outcomes == ["started", "advanced", "completed"], outcomes  # each transition made once
    assert asked.traffic("articles").weights == {"v2": 100}
    assert leader_of(pg_uri, "rollouts:articles") == holder
