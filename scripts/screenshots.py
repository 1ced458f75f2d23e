"""Screenshots of the main pages for the README (`make screenshots`): at desktop width
(1366 x 900) and phone width (390 x 844), in the light theme, and two in the dark one.

Migrates and seeds a fresh SQLite database in a temporary folder, starts `manage.py runserver`
on a free port, signs in as the demo program manager and saves PNGs to docs/img/. Needs the
Debian Chromium (`apt-get install chromium`, or CHROMIUM_PATH); never downloads a browser.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
MANAGE = [sys.executable, str(ROOT / "manage.py")]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
USERNAME, PASSWORD = "pm", "demo"
INITIATIVE = "Credit-risk scoring for small businesses"  # in Biz, with a complete gate
TIMEOUT_MS = 15_000


def find_chromium() -> str:
    configured = os.environ.get("CHROMIUM_PATH")
    candidates = [configured] if configured else ["/usr/bin/chromium", shutil.which("chromium")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    sys.exit(f"no Chromium at {configured or '/usr/bin/chromium'}: apt-get install chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path, seconds: int = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"runserver exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local URL)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    sys.exit(f"runserver did not answer on {url} within {seconds} s:\n{log.read_text()}")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


@contextmanager
def demo_server(workdir: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{workdir / 'screenshots.sqlite3'}",
        # Nothing should be queued, but if it is, it must not land in var/celery.
        "CELERY_BROKER_URL": "memory://localhost/",
        "PYTHONUNBUFFERED": "1",
    }
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run(  # noqa: S603 (our own manage.py)
            [*MANAGE, *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )
    port = free_port()
    log = workdir / "runserver.log"
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603 (our own manage.py)
            # --noreload: one process, so stopping it by its id stops the server.
            [*MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/accounts/login/", server, log)
        yield url
    finally:
        stop(server)


def login(page: Page) -> None:
    page.goto("/accounts/login/")
    page.locator("#id_username").fill(USERNAME)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".topnav .username")).to_contain_text(USERNAME)


DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def _context(browser: Browser, base_url: str, phone: bool = False, dark: bool = False) -> Page:
    options: dict[str, Any] = {"viewport": DESKTOP}
    if phone:
        options = {
            "viewport": PHONE,
            "device_scale_factor": 2,
            "is_mobile": True,
            "has_touch": True,
        }
    context = browser.new_context(
        base_url=base_url, color_scheme="dark" if dark else "light", **options
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page)
    return page


def _initiative_url(page: Page) -> str:
    page.goto("/board/")
    link = page.get_by_role("link", name=INITIATIVE)
    expect(link).to_be_visible()
    return str(link.get_attribute("href"))


def _kpis(page: Page) -> None:
    page.goto("/initiatives/BDO-1/dashboard/?range=30d")
    expect(page.locator("[data-chart] canvas").first).to_be_visible()


def shoot(browser: Browser, base_url: str) -> list[Path]:
    saved: list[Path] = []

    def save(page: Page, name: str, full_page: bool = True) -> None:
        saved.append(OUT / name)
        page.screenshot(path=saved[-1], full_page=full_page)

    # Desktop, 1366 x 900, light.
    page = _context(browser, base_url)
    initiative = _initiative_url(page)
    save(page, "board.png")
    page.goto(initiative)
    expect(page.get_by_role("heading", level=1)).to_have_text(INITIATIVE)
    expect(page.locator("#gate-panel li.criterion.unmet")).to_have_count(0)
    save(page, "initiative.png")
    saved.append(OUT / "gate-panel.png")
    page.locator("#gate-panel").screenshot(path=saved[-1])
    page.goto("/ops/")
    expect(page.locator(".ops-initiative").first).to_be_visible()
    save(page, "ops.png")
    _kpis(page)
    save(page, "kpi-dashboard.png")
    page.context.close()

    # Phone, 390 x 844 (at twice the pixels), light: what fits on the first screen.
    page = _context(browser, base_url, phone=True)
    page.goto("/board/")
    expect(page.locator("#board article[data-key]").first).to_be_visible()
    save(page, "phone-board.png", full_page=False)
    page.get_by_role("button", name="Menu").click()
    expect(page.locator("#nav-menu")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    save(page, "phone-menu.png", full_page=False)
    page.goto(initiative)
    expect(page.get_by_role("heading", level=1)).to_have_text(INITIATIVE)
    save(page, "phone-initiative.png", full_page=False)
    _kpis(page)
    page.locator(".kpi-section").first.scroll_into_view_if_needed()
    save(page, "phone-kpi-dashboard.png", full_page=False)
    page.goto("/ops/")
    expect(page.locator(".ops-initiative").first).to_be_visible()
    save(page, "phone-ops.png", full_page=False)
    page.context.close()

    # The dark theme (prefers-color-scheme: dark), desktop and phone.
    page = _context(browser, base_url, dark=True)
    _kpis(page)
    save(page, "dark-kpi-dashboard.png")
    page.context.close()
    page = _context(browser, base_url, phone=True, dark=True)
    page.goto("/board/")
    expect(page.locator("#board article[data-key]").first).to_be_visible()
    save(page, "dark-phone-board.png", full_page=False)
    page.context.close()
    return saved


def main() -> None:
    # A SIGTERM (e.g. from make or CI) unwinds like Ctrl-C, so the server is still stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    chromium = find_chromium()
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bizdevops-screenshots-"))
    try:
        with demo_server(workdir) as base_url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                saved = shoot(browser, base_url)
            finally:
                browser.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for path in saved:
        print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
