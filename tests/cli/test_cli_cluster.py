"""``embedswitch cluster`` (what ``make run-cluster`` runs): a real PostgreSQL and two serving
processes on it, started as a newcomer would; the README's upgrade walk-through runs against them,
its commands alternating between the two; then SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO, free_port, run_cli_block
from test_readme import blocks

from embedswitch.demo import DEMO_COLLECTION, SAMPLE_CORPUS

pytestmark = pytest.mark.slow


def test_cluster_serves_the_demo_from_two_processes_on_one_postgresql(tmp_path: Path) -> None:
    port = free_port()
    while not _free(port + 1):  # the second replica takes the next port
        port = free_port()
    cmd = [sys.executable, "-m", "embedswitch.cli", "cluster", "--data", str(tmp_path / "cluster")]
    cmd += ["--port", str(port), "--corpus", str(SAMPLE_CORPUS)]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a failed test kills the replicas too
    )
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    try:
        deadline = time.monotonic() + 300
        while not all(_healthy(url) for url in urls):
            assert proc.poll() is None, "embedswitch cluster exited"
            assert time.monotonic() < deadline, "the replicas did not come up"
            time.sleep(0.5)
        for url in urls:  # both serve the collection the first one loaded
            body = {"text": "vitamin D and cancer", "k": 3}
            reply = httpx.post(f"{url}/v1/collections/{DEMO_COLLECTION}/search", json=body, timeout=30)
            assert reply.status_code == 200, reply.text
            assert reply.json()["hits"]
        walkthrough = next(b for b in blocks("bash") if "versions add scifact v2" in b)
        lines = [line for line in walkthrough.splitlines() if line.startswith("embedswitch ")]
        final = [run_cli_block(line, urls[n % 2], REPO)[-1] for n, line in enumerate(lines)][-1]
        assert "v2" in final and "v1" not in final.split("scifact", 1)[-1].replace("v1/", "")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        assert not any(_healthy(url) for url in urls)
    finally:
        if proc.poll() is None:  # failed half way: PostgreSQL and the replicas go with it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
