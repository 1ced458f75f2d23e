"""Browser tests: the web UI driven by headless Chromium (Playwright) against pytest-django's
live server.

Chromium is the Debian package (`apt-get install chromium`), never a browser Playwright
downloads. Without it the browser tests skip, or fail when BIZDEVOPS_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

REQUIRE_SERVICES = os.environ.get("BIZDEVOPS_REQUIRE_SERVICES") == "1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 10_000

# The live server runs in another thread and only sees committed rows, so every browser test
# is transactional. The flush after a transactional test also deletes the rows that data
# migrations created (roles, gates, criteria): serialized_rollback puts them back before each
# browser test, and the browser tests run after the other tests, so that tests relying on those
# rows without serialized_rollback (tests/phases/test_concurrency.py) never meet an empty
# database. (tests/integration orders itself after everything and restores them too.)
BROWSER_DB = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def find_chromium() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # trylast: after pytest-django has sorted the items (db, then transactional, then no db).
    browser = [item for item in items if item.get_closest_marker("browser")]
    if browser:
        others = [item for item in items if not item.get_closest_marker("browser")]
        items[:] = others + browser


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        where = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium or chromium on PATH"
        reason = f"no Chromium: apt-get install chromium (looked for {where})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (required: BIZDEVOPS_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return path


def _serialized_contents() -> dict[str, str]:
    return {
        alias: connections[alias]._test_serialized_contents
        for alias in connections
        if hasattr(connections[alias], "_test_serialized_contents")
    }


@pytest.fixture(scope="session")
def playwright(
    chromium_path: str, django_db_setup: None, django_db_blocker: Any
) -> Iterator[Playwright]:
    # Playwright's sync API keeps an asyncio loop running in this thread, and Django refuses
    # synchronous database calls while a loop runs. The test code is synchronous, so allow it
    # for as long as Playwright runs (from the first browser test to the end of the session).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    # While a loop runs, Django keeps connections per asyncio context instead of per thread
    # (asgiref's thread-critical Local): the tests get new connection objects, which lack the
    # data serialized when the test database was created, and serialized_rollback would
    # silently restore nothing. Hand it over.
    serialized = _serialized_contents()
    try:
        with sync_playwright() as p:
            with django_db_blocker.unblock():
                for alias, contents in serialized.items():
                    connections[alias]._test_serialized_contents = contents
                    # The restore inserts rows with their original ids. An earlier
                    # transactional test's flush re-creates content types and permissions
                    # with new ids (post_migrate), which would collide: start empty.
                    call_command(
                        "flush",
                        database=alias,
                        interactive=False,
                        inhibit_post_migrate=True,
                        verbosity=0,
                    )
            try:
                yield p
            finally:
                # Those connections must not stay open, or the test database cannot be dropped.
                connections.close_all()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
    )
    expect.set_options(timeout=TIMEOUT_MS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser, live_server: Any) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def login(page: Page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    expect(page.locator(".topnav .username")).to_have_text(re.compile(rf"\b{username}\b"))


def logout(page: Page) -> None:
    page.locator(".topnav").get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
