"""Phones and small windows: every page of every role at 390 px wide without horizontal
scrolling, and the navigation behind a menu button there (which works without JavaScript
too: the menu simply stays open).

The pages and who visits them are the table of tests/browser/pages.py."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import BROWSER_DB, TIMEOUT_MS
from tests.browser.pages import (
    ANONYMOUS,
    NOT_PAGES,
    portfolio,
    session_cookie,
    uncovered_routes,
    visits,
)

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}

# The page's width, and on overflow the elements sticking out on the right (innermost
# first), so that a failure names what to fix.
MEASURE = """() => {
  const width = window.innerWidth;
  const result = {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, wide: []};
  if (result.scrollWidth <= width) return result;
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += "#" + el.id;
    if (el.classList.length) name += "." + [...el.classList].join(".");
    return name;
  };
  for (const el of document.body.querySelectorAll("*")) {
    // Inside a region that scrolls by itself, it does not widen the page.
    const scrolls = el.closest(".table-scroll, .table-wrap, pre");
    if (scrolls && getComputedStyle(el).position !== "absolute") continue;
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) {
      const inside = [...el.children].some((c) => c.getBoundingClientRect().right > width + 0.5);
      if (!inside) {
        let path = [], node = el;
        while (node && node !== document.body && path.length < 4) {
          path.unshift(describe(node));
          node = node.parentElement;
        }
        result.wide.push(`${path.join(" > ")} (right edge ${Math.round(box.right)} px)`);
      }
    }
    if (result.wide.length >= 6) break;
  }
  return result;
}"""


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The live server runs in this process: nothing it enqueues reaches a broker."""
    messages: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        "bizdevops.outbox.send", lambda name, args, options: messages.append((name, args))
    )
    return messages


@pytest.mark.django_db
def test_every_url_pattern_of_the_web_ui_is_a_visited_page_or_named(sent: Any) -> None:
    data = portfolio()
    missing = uncovered_routes(data)
    assert not missing, (
        f"add these URL patterns to SCREENS (or NOT_PAGES) in tests/browser/pages.py: {missing}"
    )
    assert len(NOT_PAGES) < 30


def new_context(browser: Browser, base_url: str, **options: Any) -> BrowserContext:
    context = browser.new_context(base_url=base_url, **options)
    context.set_default_timeout(TIMEOUT_MS)
    return context


def check_fits(page: Page, where: str) -> str | None:
    size = page.evaluate(MEASURE)
    if size["scrollWidth"] <= size["innerWidth"]:
        return None
    wide = "\n      ".join(size["wide"])
    return f"{where}: {size['scrollWidth']} px wide at {size['innerWidth']} px\n      {wide}"


@pytest.mark.browser
@BROWSER_DB
def test_every_page_of_every_role_fits_a_phone(
    browser: Browser, live_server: Any, sent: Any
) -> None:
    data = portfolio()
    problems: list[str] = []
    seen = 0
    for role, screens in visits(data).items():
        context = new_context(browser, live_server.url, viewport=PHONE)
        if role != ANONYMOUS:
            context.add_cookies([session_cookie(data.users[role], live_server.url)])  # type: ignore[list-item]
        page = context.new_page()
        for screen, url in screens:
            where = f"{role}: {screen.name} ({url})"
            response = page.goto(url)
            assert response is not None
            if response.status != screen.status:
                problems.append(f"{where}: answered {response.status}, not {screen.status}")
                continue
            expect(page.locator(screen.ready).first).to_be_visible()
            problem = check_fits(page, where)
            if problem:
                problems.append(problem)
            seen += 1
        context.close()
    assert seen > 100, seen
    assert not problems, "pages wider than a phone:\n" + "\n".join(problems)


def _menu(page: Page) -> Any:
    return page.locator(".topnav").get_by_role("button", name="Menu")


def _board_link(page: Page) -> Any:
    return page.locator(".topnav").get_by_role("link", name="Board", exact=True)


@pytest.mark.browser
@BROWSER_DB
def test_the_menu_button_shows_the_navigation_on_a_phone(
    browser: Browser, live_server: Any, pm: Any, admin_user: Any
) -> None:
    context = new_context(browser, live_server.url, viewport=PHONE)
    context.add_cookies([session_cookie(pm, live_server.url)])  # type: ignore[list-item]
    page = context.new_page()
    page.goto("/")
    menu = _menu(page)
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(_board_link(page)).to_be_hidden()
    nav_height = page.locator(".topnav").bounding_box()["height"]  # type: ignore[index]
    assert nav_height < 70, "the closed navigation is one row"

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(_board_link(page)).to_be_visible()
    assert page.locator(f"#{menu.get_attribute('aria-controls')}").is_visible()
    assert check_fits(page, "open menu") is None
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(_board_link(page)).to_be_hidden()
    expect(menu).to_be_focused()

    menu.click()
    _board_link(page).click()
    expect(page).to_have_url(f"{live_server.url}/board/")
    expect(_menu(page)).to_have_attribute("aria-expanded", "false")
    context.close()

    # A wide window shows the links in one row, even an admin's (the most entries), and no
    # menu button.
    context = new_context(browser, live_server.url, viewport=DESKTOP)
    context.add_cookies([session_cookie(admin_user, live_server.url)])  # type: ignore[list-item]
    page = context.new_page()
    page.goto("/")
    expect(_board_link(page)).to_be_visible()
    expect(_menu(page)).to_be_hidden()
    nav_height = page.locator(".topnav").bounding_box()["height"]  # type: ignore[index]
    assert nav_height < 70, f"the navigation wraps at 1366 px: {nav_height} px high"
    context.close()


@pytest.mark.browser
@BROWSER_DB
def test_without_javascript_the_phone_navigation_stays_open(
    browser: Browser, live_server: Any, pm: Any
) -> None:
    context = new_context(browser, live_server.url, viewport=PHONE, java_script_enabled=False)
    context.add_cookies([session_cookie(pm, live_server.url)])  # type: ignore[list-item]
    page = context.new_page()
    page.goto("/")
    expect(_menu(page)).to_be_hidden()  # a button that could do nothing is not shown
    expect(_board_link(page)).to_be_visible()
    _board_link(page).click()
    expect(page).to_have_url(f"{live_server.url}/board/")
    assert check_fits(page, "board without JavaScript") is None
    context.close()
