"""The console in a real headless browser against a real server: two ready versions and one still
backfilling (throttled, so its progress moves while the page watches), API keys with roles."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _browser import Watched
from conftest import FAST, ServerThread

from embedswitch import Engine
from embedswitch.http.settings import HttpConfig

KEYS = {"read": "k-read", "admin": "k-admin"}
CONFIG = HttpConfig(api_keys=",".join(f"{role}:{key}" for role, key in KEYS.items()))
WORDS = ["vitamin", "bone", "sleep", "exercise", "heart", "diet"]
WORDS += ["protein", "cancer", "gene", "cell", "brain", "memory"]
RECORDS = [
    {
        "id": f"d{i}",
        "text": " ".join(WORDS[(i * j + i // 7) % len(WORDS)] for j in range(1, 6)),
        "fields": {"n": i},
    }
    for i in range(2000)
]


def fill(engine: Engine) -> None:
    """``docs``: v1 live, v2 ready without traffic, v3 backfilling at 40 records/s (50 s in all: the
    tests never wait for its end)."""
    engine.create_collection("docs", {"name": "v1", "model": "hashing"})
    engine.add_version("docs", {"name": "v2", "model": {"type": "hashing", "dim": 128, "seed": 3}})
    engine.upsert("docs", RECORDS)
    engine.add_version("docs", {"name": "v3", "model": {"type": "hashing", "dim": 64, "seed": 5}})
    for word in WORDS:
        engine.search("docs", word)  # requests for the charts


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[ServerThread, httpx.Client]]:
    config = FAST.model_copy(update={"backfill_max_rate": 40.0, "backfill_batch": 8, "encode_workers": 1})
    with Engine.open(tmp_path / "data", config) as engine:
        fill(engine)
        with (
            ServerThread(engine, CONFIG) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEYS['admin']}"}) as api,
        ):
            yield server, api


def open_console(watched: Watched, url: str, key: str, last: str = "v3") -> Any:
    """The console with ``key`` typed in, showing ``docs`` down to version ``last``."""
    page = watched.page
    watched.expected.append("status of 401 (Unauthorized) at " + url)  # the first load, before a key
    page.goto(f"{url}/ui")
    problem = page.get_by_role("alert")
    problem.filter(has_text="needs an API key").wait_for()
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use key").click()
    page.get_by_role("heading", name="docs").wait_for()
    page.locator(f'tr[data-version="{last}"]').wait_for()
    assert problem.is_hidden()
    return page


def done(page: Any) -> int:
    return int(page.get_by_role("progressbar", name="v3 backfill").get_attribute("aria-valuenow"))


def eventually(page: Any, condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, letting the page run meanwhile (the page's CSP forbids
    the string predicates of ``wait_for_function``)."""
    for _ in range(200):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError("the condition never held")


def advances(page: Any, before: int) -> None:
    """Wait until the page shows v3's backfill past ``before``."""
    eventually(page, lambda: done(page) > before)


def test_progress_advances_and_the_slider_moves_traffic(
    running: tuple[ServerThread, httpx.Client], watched: Watched
) -> None:
    server, api = running
    page = open_console(watched, server.url, KEYS["admin"])
    first = done(page)
    assert first < len(RECORDS)
    advances(page, first)  # the page polls by itself: no reload
    assert page.locator('tr[data-version="v3"] .badge').inner_text() == "building"
    assert page.get_by_role("img", name="traffic weights over time").count() == 1
    assert page.locator("#charts figure").count() == 4  # QPS, p50, p99, error rate

    slider = page.get_by_role("slider", name="v2")
    slider.focus()
    for _ in range(25):
        page.keyboard.press("ArrowRight")  # the keyboard moves the slider
    assert slider.input_value() == "25"
    page.get_by_role("slider", name="v1").fill("75")
    page.get_by_role("button", name="Apply weights…").click()
    dialog = page.get_by_role("dialog")
    call = dialog.locator("#confirm-call").inner_text()
    assert call.startswith("PUT /v1/collections/docs/traffic")
    assert '"v1": 75' in call and '"v2": 25' in call
    watched.screenshot("console-confirm-traffic")
    dialog.get_by_role("button", name="Send").click()
    dialog.wait_for(state="hidden")
    weights = api.get("/v1/collections/docs/traffic").json()["weights"]
    assert {n: w for n, w in weights.items() if w} == {"v1": 75, "v2": 25}
    page.locator("#traffic-timeline figcaption", has_text="v1 75, v2 25").wait_for()
    advances(page, done(page))  # and still after the action
    watched.screenshot("console")


def test_side_by_side_search_highlights_the_overlap(
    running: tuple[ServerThread, httpx.Client], watched: Watched
) -> None:
    server, api = running
    page = open_console(watched, server.url, KEYS["read"])
    page.get_by_label("Query", exact=True).fill("vitamin bone sleep")
    page.get_by_label("Left").select_option("v1")
    page.get_by_label("Right").select_option("v2")
    page.get_by_role("button", name="Search both").click()
    summary = page.locator("#search-results .overlap")
    summary.wait_for()
    hits = {}
    for version in ("v1", "v2"):
        body = {"text": "vitamin bone sleep", "k": 10, "version": version}
        hits[version] = [h["id"] for h in api.post("/v1/collections/docs/search", json=body).json()["hits"]]
        shown = page.locator(f'#search-results .column[data-version="{version}"] li')
        assert shown.evaluate_all("items => items.map(li => li.dataset.id)") == hits[version]
    shared = set(hits["v1"]) & set(hits["v2"])
    assert summary.inner_text().startswith(f"{len(shared)} of the top 10 in common")
    highlighted = page.locator('#search-results .column[data-version="v1"] li.shared')
    assert set(highlighted.evaluate_all("items => items.map(li => li.dataset.id)")) == shared
    watched.screenshot("console-side-by-side")


def test_a_read_key_sees_everything_and_is_refused_an_action(
    running: tuple[ServerThread, httpx.Client], watched: Watched
) -> None:
    server, api = running
    watched.expected.append("status of 403")  # the refused request, shown by the console
    page = open_console(watched, server.url, KEYS["read"])
    for section in (
        "#versions table",
        "#traffic-timeline svg",
        "#charts figure",
        "#experiment table",
        "#events table",
    ):
        assert page.locator(section).count() >= 1, section
    page.get_by_role("button", name="Promote v2").click()
    dialog = page.get_by_role("dialog")
    assert (
        dialog.locator("#confirm-call")
        .inner_text()
        .startswith("POST /v1/collections/docs/versions/v2/promote")
    )
    dialog.get_by_role("button", name="Send").click()
    refusal = dialog.locator(".outcome-bad")
    refusal.wait_for()
    assert re.search(r"403 forbidden: this key has role read; the request needs admin", refusal.inner_text())
    watched.screenshot("console-read-key-refused")
    dialog.get_by_role("button", name="Close").click()
    assert api.get("/v1/collections/docs/traffic").json()["weights"] == {"v1": 100}
    assert any("status of 403" in e for e in watched.errors)  # the only error logged was the refusal


def test_the_console_on_a_postgresql_store(tmp_path: Path, pg_uri: str, watched: Watched) -> None:
    """Smoke test of the shared store: the page loads, shows the collection and its versions."""
    with Engine.open(tmp_path / "data", FAST, store=pg_uri) as engine:
        engine.create_collection("docs", {"name": "v1", "model": "hashing"})
        seq = engine.upsert("docs", RECORDS[:50]).seq
        engine.add_version("docs", {"name": "v2", "model": {"type": "hashing", "dim": 64, "seed": 5}})
        engine.search("docs", {"text": "vitamin", "min_seq": seq})  # once v1's table holds them
        with ServerThread(engine, CONFIG) as server:
            page = open_console(watched, server.url, KEYS["read"], last="v2")
            assert page.locator("#collections button").inner_text().startswith("docs")
            page.locator("#charts figure").first.wait_for()
            watched.screenshot("console-postgresql")


def confirm(page: Any, starts: str) -> None:
    """Check the request the dialog shows, send it, and wait for the dialog to close."""
    dialog = page.get_by_role("dialog")
    assert dialog.locator("#confirm-call").inner_text().startswith(starts)
    dialog.get_by_role("button", name="Send").click()
    dialog.wait_for(state="hidden")


def test_an_admin_key_adds_a_version_runs_a_rollout_evaluates_and_retires(
    running: tuple[ServerThread, httpx.Client], watched: Watched
) -> None:
    server, api = running
    page = open_console(watched, server.url, KEYS["admin"])

    page.get_by_text("Add a version").click()
    form = page.locator("#add-version")
    form.get_by_label("Version name").fill("v4")
    form.get_by_label("Model").fill('{"type": "hashing", "dim": 32, "seed": 7}')
    form.get_by_label("Index type").select_option("exact")
    form.get_by_role("button", name="Add version…").click()
    confirm(page, "POST /v1/collections/docs/versions")
    v4 = api.get("/v1/collections/docs/versions/v4").json()
    assert v4["model"] == {"type": "hashing", "dim": 32, "seed": 7} and v4["index"]["type"] == "exact"
    page.locator('tr[data-version="v4"]').wait_for()

    page.get_by_text("Start a gated rollout").click()
    form = page.locator("#rollout-form")
    form.get_by_label("To").select_option("v2")
    form.get_by_label("Steps (%)").fill("50, 100")
    form.get_by_label("Min requests per step").fill("100000")
    form.get_by_role("button", name="Start rollout…").click()
    confirm(page, "POST /v1/collections/docs/rollouts")
    eventually(page, lambda: api.get("/v1/collections/docs/rollouts/1").json()["step"] == 50)
    assert api.get("/v1/collections/docs/traffic").json()["weights"] == {"v1": 50, "v2": 50}
    for _ in range(20):  # routed searches: both arms of the experiment
        api.post("/v1/collections/docs/search", json={"text": "vitamin heart"}).raise_for_status()
    page.locator("#experiment .verdict").first.wait_for()
    page.get_by_role("button", name="Stop rollout…").click()
    confirm(page, "POST /v1/collections/docs/rollouts/1/stop")
    assert api.get("/v1/collections/docs/rollouts/1").json()["status"] == "stopped"
    page.get_by_role("list", name="rollout 1 transitions").get_by_text("stopped", exact=True).wait_for()

    page.get_by_text("Score versions on judged queries").click()
    judged = {"versions": ["v1", "v2"], "queries": {"q1": "vitamin bone"}, "qrels": {"q1": {"d1": 1}}}
    page.get_by_label("Request body").fill(json.dumps(judged))
    page.locator("#eval-judged").get_by_role("button", name="Evaluate…").click()
    confirm(page, "POST /v1/collections/docs/evaluate")
    scores = page.locator("#evaluation table tbody tr")
    assert scores.evaluate_all("rows => rows.map(r => r.querySelector('th').textContent)") == ["v1", "v2"]

    page.get_by_role("button", name="Retire v4").click()
    confirm(page, "DELETE /v1/collections/docs/versions/v4")
    assert [v["name"] for v in api.get("/v1/collections/docs/versions").json()] == ["v1", "v2", "v3"]
    page.locator('tr[data-version="v4"]').wait_for(state="detached")
    watched.screenshot("console-actions")


def test_the_keyboard_reaches_collections_search_and_cancels_an_action(
    running: tuple[ServerThread, httpx.Client], watched: Watched
) -> None:
    server, api = running
    spec = {"name": "notes", "version": {"name": "n1", "model": "hashing"}}
    api.post("/v1/collections", json=spec).raise_for_status()
    page = open_console(watched, server.url, KEYS["admin"])
    page.get_by_role("button", name="Retire v3").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    assert dialog.locator("#confirm-call").inner_text().startswith("DELETE /v1/collections/docs/versions/v3")
    assert page.evaluate("document.activeElement.id") == "confirm-cancel"  # Enter would not send
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert [v["name"] for v in api.get("/v1/collections/docs/versions").json()] == ["v1", "v2", "v3"]

    page.locator("body").press("/")
    assert page.evaluate("document.activeElement.id") == "search-text"
    page.locator("#collections button").first.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="notes").wait_for()
    assert page.evaluate("location.hash") == "#c=notes"
    page.locator('tr[data-version="n1"]').wait_for()
