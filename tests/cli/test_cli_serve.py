"""``embedswitch serve``: off loopback, its log, graceful shutdown on SIGTERM; ``embedswitch key new``.

The shutdown tests run a real ``embedswitch serve`` process. Its second version's model is the
``openai`` adapter talking to a real endpoint in the test process that holds any text containing
``HOLD`` until the test releases it (``_endpoint.py``): a request or an applier step that is in
flight for sure when SIGTERM arrives.
"""

from __future__ import annotations

import json
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from _checks import assert_end_state
from _endpoint import HOLD, Faults, endpoint, spec
from conftest import ServerProcess
from typer.testing import CliRunner

from embedswitch import Engine, EngineConfig
from embedswitch.cli import app
from embedswitch.cli.serve import Flags, http_config
from embedswitch.http.auth import Role, digest, load_key_file

QUERY_LOG = 100_000


def test_serving_off_loopback_without_keys_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMBEDSWITCH_API_KEYS", raising=False)
    result = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "data"), "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "without API keys" in result.output and "--insecure" in result.output
    assert not (tmp_path / "data").exists()  # refused before the data dir was touched


def test_serving_needs_a_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDSWITCH_DATA", raising=False)
    monkeypatch.delenv("EMBEDSWITCH_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1 and "--data DIR, EMBEDSWITCH_DATA" in result.output


def test_the_served_host_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDSWITCH_ALLOWED_HOSTS", raising=False)
    monkeypatch.setenv("EMBEDSWITCH_API_KEYS", "admin:k")
    assert "10.1.2.3" in http_config(Flags(host="10.1.2.3").load()).allowed_hosts
    assert "*" in http_config(Flags(host="0.0.0.0").load()).allowed_hosts
    monkeypatch.delenv("EMBEDSWITCH_API_KEYS")
    assert "*" in http_config(Flags(host="0.0.0.0", insecure=True).load()).allowed_hosts
    monkeypatch.setenv("EMBEDSWITCH_ALLOWED_HOSTS", "search.internal")
    assert http_config(Flags(host="0.0.0.0", insecure=True).load()).allowed_hosts == ["search.internal"]


def test_key_new_prints_a_key_and_its_file_entry(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["key", "new", "--role", "write", "--collection", "docs", "--name", "ix"]
    )
    assert result.exit_code == 0, result.output
    key = result.output.split("key (shown once): ")[1].split()[0]
    entry = json.loads(result.output.split('{"keys": [...]}: ')[1])
    assert entry == {"name": "ix", "role": "write", "sha256": digest(key), "collections": ["docs"]}
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [entry]}))
    [loaded] = load_key_file(tmp_path / "keys.json")
    assert loaded.role is Role.write and loaded.may(Role.write, "docs") is None


# -- graceful shutdown -----------------------------------------------------------------------------


def seed(data: Path, url: str) -> None:
    """Collection ``c``: ``v1`` (hashing) takes the traffic, ``v2`` (the endpoint's model) is ready."""
    with Engine.open(data, EngineConfig(checkpoint_interval_s=0.2, query_log_size=QUERY_LOG)) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"seed{i}", "text": f"seed record {i}"} for i in range(20)])
        engine.add_version("c", {"name": "v2", "model": spec(url)})
        engine.wait_ready("c", "v2", 60)


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The server's log: every line must be one JSON object."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Load:
    """Writers and searchers, a new connection per request, until the server stops accepting.
    Every answer must be a 2xx; a request that got no answer must have had no effect (checked
    against the server's log and the data after the restart)."""

    url: str
    acked: set[str] = field(default_factory=set)  # record ids whose write was acknowledged
    searches: dict[str, str] = field(default_factory=dict)  # request id -> text, answered routed searches
    answered: set[str] = field(default_factory=set)  # X-Request-ID of every answer received
    bad: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, kind: str, t: int) -> None:
        rng = random.Random(t)
        n = 0
        with httpx.Client(
            base_url=self.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
        ) as h:
            while True:
                n += 1
                try:
                    if kind == "write":
                        rid = f"w{t}-{n}"
                        response = h.put(
                            "/v1/collections/c/records", json={"records": [{"id": rid, "text": rid}]}
                        )
                    else:
                        text = f"query {rng.randrange(1000)}"
                        response = h.post("/v1/collections/c/search", json={"text": text, "k": 3})
                except httpx.ConnectError:
                    return  # refused: the server no longer accepts connections
                except httpx.TransportError:
                    continue  # no answer: judged by its effects (the log, the data)
                self._answer(kind, response, rid if kind == "write" else text)

    def _answer(self, kind: str, response: httpx.Response, what: str) -> None:
        with self.lock:
            if response.status_code != 200:
                self.bad.append(f"{kind} {what}: {response.status_code} {response.text}")
                return
            self.answered.add(response.headers["x-request-id"])
            if kind == "write":
                self.acked.add(what)
            else:
                self.searches[response.json()["request_id"]] = what


def test_sigterm_drains_requests_flushes_checkpoints_and_loses_nothing(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "server.log"
    settings = {
        "EMBEDSWITCH_LOG_FORMAT": "json",
        "EMBEDSWITCH_QUERY_LOG_SIZE": str(QUERY_LOG),
        "EMBEDSWITCH_DRAIN_TIMEOUT_S": "30",
        "EMBEDSWITCH_SHUTDOWN_TIMEOUT_S": "45",
        "EMBEDSWITCH_APLY_BATCH": "5",  # misspelled on purpose: warned about, ignored
    }
    faults = Faults()
    with endpoint(faults) as url:
        seed(data, url)
        server = ServerProcess(data, env=settings, log_level="info", log=log).start()
        load = Load(server.url)
        threads = [
            threading.Thread(target=load.run, args=(kind, t))
            for t, kind in enumerate(["write"] * 3 + ["search"] * 2)
        ]
        held: list[httpx.Response] = []
        pinned = {"text": f"{HOLD} this query", "k": 3, "version": "v2"}
        holder = threading.Thread(
            target=lambda: held.append(
                httpx.post(f"{server.url}/v1/collections/c/search", json=pinned, timeout=60)
            )
        )
        try:
            for thread in threads:
                thread.start()
            while len(load.acked) < 30 or len(load.searches) < 30:
                assert not load.bad, load.bad
                threading.Event().wait(0.05)
            holder.start()
            assert faults.held.wait(30), "the pinned search never reached v2's model"
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            for thread in threads:  # each stops once a connection is refused
                thread.join(timeout=60)
            faults.release.set()  # the search in flight since before SIGTERM may finish now
            holder.join(timeout=60)
            assert server.proc.wait(timeout=45 + 15) == -signal.SIGTERM
        finally:
            server.stop()
        assert not load.bad, load.bad
        assert held and held[0].status_code == 200 and held[0].json()["version"] == "v2", held

        lines = log_lines(log)
        served = {line["request_id"] for line in lines if line["logger"] == "embedswitch.http"}
        answered = load.answered | {held[0].headers["x-request-id"]}
        assert held[0].headers["x-request-id"] in served
        cut_off = served - answered
        assert not cut_off, f"the server answered requests no client received: {sorted(cut_off)[:5]}"
        assert all(line["status"] == 200 for line in lines if line["logger"] == "embedswitch.http")
        warnings = [line["message"] for line in lines if line["level"] == "WARNING"]
        assert any(
            "EMBEDSWITCH_APLY_BATCH" in w and "did you mean EMBEDSWITCH_APPLY_BATCH" in w for w in warnings
        )

        with Engine.open(data, EngineConfig(query_log_size=QUERY_LOG)) as engine:
            store = engine.store
            head = engine.describe("c").head_seq
            written = {
                r.id for r in store.scan_records("c", head, None, 10**9) if not r.id.startswith("seed")
            }
            assert written == load.acked, "an acknowledged write is missing, or an unanswered one is there"
            assert engine.query_log.count("c") == len(load.searches)  # the buffer was written on close
            missing = [rid for rid in load.searches if engine.experiments.log.find("c", rid) is None]
            assert not missing, f"assignments of answered searches lost: {missing[:5]}"
            assert_end_state(engine, "c")


def test_a_shutdown_that_cannot_finish_exits_at_the_deadline(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "server.log"
    settings = {"EMBEDSWITCH_DRAIN_TIMEOUT_S": "1", "EMBEDSWITCH_SHUTDOWN_TIMEOUT_S": "3"}
    faults = Faults()
    with endpoint(faults) as url:
        seed(data, url)
        server = ServerProcess(data, env=settings, log_level="info", log=log).start()
        try:
            stuck = {"records": [{"id": "stuck", "text": f"{HOLD} in v2's applier"}]}
            httpx.put(f"{server.url}/v1/collections/c/records", json=stuck).raise_for_status()
            assert faults.held.wait(30), "v2's applier never reached its model"
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)  # closing the engine waits for v2's applier: forever
            assert server.proc.wait(timeout=3 + 15) == 1
        finally:
            server.stop()
        assert "did not finish within shutdown_timeout_s (3 s)" in log.read_text()
        faults.release.set()
        with Engine.open(data) as engine:
            assert engine.get_record("c", "stuck").text.startswith(HOLD)
            assert_end_state(engine, "c")
