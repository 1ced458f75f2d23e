"""Board filters: htmx swaps the cards and pushes the filter into the URL, so a reload keeps
the filter and the back button returns to the previous filter."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from initiatives.selectors import BOARD_PAGE
from tests.browser.conftest import BROWSER_DB, login
from tests.factories import BusinessUnitFactory, make_initiative

pytestmark = [pytest.mark.browser, BROWSER_DB]


def _cards(page: Page) -> list[str]:
    return sorted(
        page.locator("#board article[data-key]").evaluate_all(
            "cards => cards.map(card => card.dataset.key)"
        )
    )


def _expect_cards(page: Page, keys: list[str]) -> None:
    cards = page.locator("#board article[data-key]")
    expect(cards).to_have_count(len(keys))
    for key in keys:
        expect(page.locator(f"#board article[data-key={key}]")).to_be_visible()
    assert _cards(page) == sorted(keys)


def test_filters_update_cards_and_url_survive_reload_and_back(
    page: Page, pm: Any, unit: Any
) -> None:
    marketing = BusinessUnitFactory(name="Marketing")
    fraud_card = make_initiative(pm, unit, title="Card-fraud detection").key
    churn = make_initiative(pm, marketing, title="Customer churn prediction").key
    offers = make_initiative(pm, marketing, title="Next-best-offer recommendations").key

    login(page, "pm", "pw")
    page.goto("/board/")
    _expect_cards(page, [fraud_card, churn, offers])
    expect(page.locator("#board .result-count")).to_have_text("3 initiatives in progress")
    page.evaluate("window.__sameDocument = true")

    # Business unit: htmx replaces #board and pushes the query string.
    with page.expect_request(
        lambda r: "/board/?" in r.url and r.headers.get("hx-request") == "true"
    ):
        page.get_by_label("Business unit").select_option(label="Marketing")
    expect(page).to_have_url(re.compile(rf"[?&]unit={marketing.pk}(&|$)"))
    _expect_cards(page, [churn, offers])
    expect(page.locator("#board .result-count")).to_have_text("2 initiatives in progress")
    unit_url = page.url

    # Search on top of the unit.
    page.get_by_label("Search", exact=True).fill("churn")
    expect(page).to_have_url(re.compile(r"[?&]q=churn(&|$)"))
    expect(page).to_have_url(re.compile(rf"[?&]unit={marketing.pk}(&|$)"))
    _expect_cards(page, [churn])
    search_url = page.url
    assert page.evaluate("window.__sameDocument") is True, "the filters reloaded the page"

    # A reload renders the filtered board on the server, with the form showing the filter.
    page.reload()
    assert page.evaluate("window.__sameDocument") is None
    expect(page).to_have_url(search_url)
    expect(page.get_by_label("Business unit")).to_have_value(str(marketing.pk))
    expect(page.get_by_label("Business unit").locator("option:checked")).to_have_text("Marketing")
    expect(page.get_by_label("Search", exact=True)).to_have_value("churn")
    _expect_cards(page, [churn])

    # Back: the unit-only URL and its state (search empty, both Marketing cards).
    page.go_back()
    expect(page).to_have_url(unit_url)
    expect(page.get_by_label("Business unit")).to_have_value(str(marketing.pk))
    expect(page.get_by_label("Search", exact=True)).to_have_value("")
    _expect_cards(page, [churn, offers])

    # Back again: the unfiltered board.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/board/$"))
    expect(page.get_by_label("Business unit")).to_have_value("")
    _expect_cards(page, [fraud_card, churn, offers])


def test_back_button_right_after_filtering_restores_previous_filter(
    page: Page, pm: Any, unit: Any
) -> None:
    """Back without a reload in between: htmx handles the history entry it pushed itself."""
    marketing = BusinessUnitFactory(name="Marketing")
    fraud_card = make_initiative(pm, unit, title="Card-fraud detection").key
    churn = make_initiative(pm, marketing, title="Customer churn prediction").key
    offers = make_initiative(pm, marketing, title="Next-best-offer recommendations").key

    login(page, "pm", "pw")
    page.goto("/board/")
    page.get_by_label("Business unit").select_option(label="Marketing")
    expect(page).to_have_url(re.compile(rf"[?&]unit={marketing.pk}(&|$)"))
    _expect_cards(page, [churn, offers])
    unit_url = page.url
    page.get_by_label("Search", exact=True).fill("churn")
    expect(page).to_have_url(re.compile(r"[?&]q=churn(&|$)"))
    _expect_cards(page, [churn])

    page.go_back()
    expect(page).to_have_url(unit_url)
    _expect_cards(page, [churn, offers])
    expect(page.get_by_label("Business unit")).to_have_value(str(marketing.pk))
    expect(page.get_by_label("Search", exact=True)).to_have_value("")

    page.go_back()
    expect(page).to_have_url(re.compile(r"/board/$"))
    _expect_cards(page, [fraud_card, churn, offers])
    expect(page.get_by_label("Business unit")).to_have_value("")

    page.go_forward()
    expect(page).to_have_url(unit_url)
    _expect_cards(page, [churn, offers])
    expect(page.get_by_label("Business unit")).to_have_value(str(marketing.pk))


def test_show_more_appends_the_next_cards_of_a_column_within_the_filter(
    page: Page, pm: Any, unit: Any
) -> None:
    marketing = BusinessUnitFactory(name="Marketing")
    keys = [make_initiative(pm, marketing, title=f"Idea {n}").key for n in range(BOARD_PAGE + 3)]
    make_initiative(pm, unit, title="Elsewhere")

    login(page, "pm", "pw")
    page.goto("/board/")
    page.get_by_label("Business unit").select_option(label="Marketing")
    expect(page).to_have_url(re.compile(rf"[?&]unit={marketing.pk}(&|$)"))
    filtered_url = page.url
    expect(page.locator("#board article[data-key]")).to_have_count(BOARD_PAGE)
    expect(page.locator("#column-biz .count")).to_have_text(f"{BOARD_PAGE + 3} initiatives")

    more = page.get_by_role("link", name=f"Show 3 more of {BOARD_PAGE + 3} in Biz")
    with page.expect_request(
        lambda r: (
            f"/board/column/?unit={marketing.pk}&column=biz&page=2" in r.url
            and r.headers.get("hx-request") == "true"
        )
    ):
        more.click()
    _expect_cards(page, keys)
    expect(more).to_have_count(0)  # the end of the column
    # Focus moves to the first new card, and the address stays the filtered board.
    assert (
        page.evaluate("document.activeElement.querySelector('article').dataset.key")
        == (keys[BOARD_PAGE])
    )
    assert page.url == filtered_url


def test_show_more_without_javascript_opens_the_columns_next_page(
    browser: Any, live_server: Any, pm: Any, unit: Any
) -> None:
    keys = [make_initiative(pm, unit, title=f"Idea {n}").key for n in range(BOARD_PAGE + 3)]
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        login(page, "pm", "pw")
        page.goto(f"/board/?unit={unit.pk}")
        expect(page.locator("#board article[data-key]")).to_have_count(BOARD_PAGE)
        page.get_by_role("link", name=f"Show 3 more of {BOARD_PAGE + 3} in Biz").click()
        expect(page).to_have_url(re.compile(rf"/board/\?unit={unit.pk}&page_biz=2#column-biz$"))
        _expect_cards(page, keys[BOARD_PAGE:])
        page.get_by_role("link", name="back to the first").click()
        _expect_cards(page, keys[:BOARD_PAGE])
    finally:
        context.close()
