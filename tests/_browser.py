"""A real headless browser for the console's tests: Debian's ``chromium`` driven by Playwright
through its executable path (Playwright's own browser download is not used). ``make install``
installs both. Outside CI, a machine without them skips the tests with the reason shown; in CI
they must run.

Every page records what its scripts log: ``Page.problems`` lists console errors and uncaught
exceptions, less the failed requests a test says it expects (a 403 the console shows).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(
    os.environ.get("EMBEDSWITCH_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)
"""Screenshots land here (gitignored; CI may keep the folder)."""


def chromium_path() -> str | None:
    return (
        os.environ.get("EMBEDSWITCH_TEST_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}; make install installs it")
    pytest.skip(f"{reason}; run make install")


@dataclass
class Watched:
    """A page and what its scripts said."""

    page: Any
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # substrings of console errors a test expects

    def problems(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, for one module: Playwright's sync API marks an asyncio loop as running in the main
    thread until it stops, and no async test after it could run on asyncio (the LangChain suite's)."""
    executable = chromium_path()
    if executable is None:
        _skip_or_fail("no chromium on this machine")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("the playwright package is missing")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    """A fresh page (its own sessionStorage) on a laptop-sized screen; the test fails if its
    scripts logged an error it did not expect."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    found = Watched(page)
    page.on(
        "console", lambda m: m.type == "error" and found.errors.append(f"{m.text} at {m.location.get('url')}")
    )
    page.on("pageerror", lambda exc: found.errors.append(f"uncaught: {exc}"))
    yield found
    context.close()
    problems = found.problems()
    assert not problems, f"the console's scripts logged errors: {problems}"
