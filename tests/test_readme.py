"""Every example in README.md runs: the Python blocks, the upgrade walk-through and the curl call."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, ServerProcess, run_cli_block

README = (REPO / "README.md").read_text()
SAMPLE = REPO / "embedswitch" / "data" / "sample_corpus.jsonl"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def expected_outputs(code: str) -> list[str]:
    """The ``# ...`` comments after print(...) calls: what the README says they print."""
    return [m.group(1).strip() for m in re.finditer(r"print\(.*\)\s+# (.+)$", code, flags=re.M)]


def run_python(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    return out.getvalue()


def test_first_screen_has_the_two_commands() -> None:
    first = blocks("bash")[0]
    assert "make run" in first and "make test" in first


def test_engine_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = next(b for b in blocks("python") if "Engine.open" in b)
    printed = run_python(code).splitlines()
    assert printed == expected_outputs(code)


def test_keyword_to_hybrid_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = next(b for b in blocks("python") if '"bm25"' in b)
    assert run_python(code).splitlines() == expected_outputs(code)


def test_recommendation_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = next(b for b in blocks("python") if "recommend(" in b)
    assert run_python(code).splitlines() == expected_outputs(code)


class DemoServer(ServerProcess):
    """``embedswitch demo`` on the shipped sample, as ``make run`` starts it on SciFact."""

    def start(self, timeout_s: float = 600) -> DemoServer:
        cmd = [
            sys.executable,
            "-m",
            "embedswitch.cli",
            "demo",
            "--data",
            str(self.data),
            "--port",
            str(self.port),
            "--corpus",
            str(SAMPLE),
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO)
        self.wait_healthy(timeout_s)
        return self


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    server = DemoServer(tmp_path_factory.mktemp("demo") / "data").start()
    yield server
    server.stop()


def test_upgrade_walkthrough(demo: DemoServer) -> None:
    walkthrough = next(b for b in blocks("bash") if "versions add scifact v2" in b)
    final = run_cli_block(walkthrough, demo.url, REPO)[-1]
    assert "v2" in final and "v1" not in final.split("scifact", 1)[-1].replace("v1/", "")


def test_recommendation_walkthrough(demo: DemoServer, tmp_path: Path) -> None:
    walkthrough = next(b for b in blocks("bash") if "train als shop --version v2" in b)
    outputs = run_cli_block(walkthrough, demo.url, tmp_path)
    assert "answered by version v1" in outputs[4] and "answered by version v2" in outputs[6]
    assert "version 'v3' is ready" in outputs[9]
    status = outputs[-1]
    assert "v3" in status and "als" in status


def test_curl_example(demo: DemoServer) -> None:
    curl = next(b for b in blocks("bash") if b.lstrip().startswith("curl"))
    command = curl.replace("http://127.0.0.1:8000", demo.url).replace("\\\n", " ")
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '"version"' in done.stdout and '"hits"' in done.stdout, done


def test_client_example(demo: DemoServer) -> None:
    code = next(b for b in blocks("python") if "Client(" in b)
    printed = run_python(code.replace("http://127.0.0.1:8000", demo.url)).splitlines()
    assert printed[-1] == expected_outputs(code)[-1]
    assert printed[0].split()[0] in {"v1", "v2"}
