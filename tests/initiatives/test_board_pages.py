"""The board at portfolio scale: each column shows one page of cards with the count of all
of them, "show more" brings the next page (through htmx, or a whole board page without
JavaScript), the filters hold throughout, and neither the queries nor the HTML grow with the
number of initiatives."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from initiatives.models import BusinessUnit, Initiative, Phase, Status
from initiatives.selectors import BOARD_PAGE
from kpis.models import KPI, Measurement, Origin
from tests.factories import BusinessUnitFactory
from tests.helpers import HTMX, html, queries

pytestmark = pytest.mark.django_db

COLUMN = re.compile(
    r'<section class="column column-\w+"[^>]*data-phase="(?P<phase>\w+)">(?P<body>.*?)</section>',
    re.S,
)
CARD_KEY = re.compile(r'data-key="(BDO-\d+)"')
COUNT = re.compile(r'<span class="count">(\d+)<span class="sr-only"> initiatives?</span></span>')
MORE = re.compile(
    r'<li class="more" id="more-(?P<phase>\w+)"><a (?P<attrs>[^>]*)>(?P<label>.*?)</a></li>'
)


def _columns(content: str) -> dict[str, dict[str, Any]]:
    """Per phase: the card keys in order, the count in the header and the "show more" link."""
    columns = {}
    for m in COLUMN.finditer(content):
        body = m["body"]
        count = COUNT.search(body)
        more = MORE.search(body)
        columns[m["phase"]] = {
            "keys": CARD_KEY.findall(body),
            "count": int(count[1]) if count else None,
            "more": _more(more) if more else None,
        }
    assert list(columns) == ["biz", "dev", "ops"], columns
    return columns


def _more(match: re.Match[str]) -> dict[str, str]:
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', match["attrs"]))
    label = re.sub(r"<[^>]+>", "", match["label"])
    return {
        **attrs,
        "href": attrs["href"].replace("&amp;", "&"),
        "hx": attrs["hx-get"].replace("&amp;", "&"),
        "label": label,
    }


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def _add(
    count: int,
    *,
    phase: Phase,
    unit: BusinessUnit,
    owner: Any,
    status: Status = Status.ACTIVE,
    title: str = "Idea",
) -> list[Initiative]:
    """Initiatives in bulk (the gates have their own tests), each with a KPI whose latest
    value is critical for every third of them."""
    started = timezone.now() if phase == Phase.DEV else None
    rows = Initiative.objects.bulk_create(
        Initiative(
            title=f"{title} {n}",
            business_unit=unit,
            accountable=owner,
            created_by=owner,
            phase=phase,
            status=status,
            dev_started_at=started,
        )
        for n in range(count)
    )
    kpis = KPI.objects.bulk_create(
        KPI(
            initiative=i,
            name="Uptime",
            created_by=owner,
            warning_threshold=99,
            critical_threshold=90,
        )
        for i in rows
    )
    now = timezone.now()
    Measurement.objects.bulk_create(
        Measurement(
            kpi=k,
            as_of=now - dt.timedelta(minutes=m),
            value=50 if n % 3 == 0 else 99.5,
            origin=Origin.API,
        )
        for n, k in enumerate(kpis)
        for m in range(2)
    )
    return rows


@pytest.fixture
def marketing(db: Any) -> Any:
    return BusinessUnitFactory(name="Marketing")


def test_a_long_column_shows_one_page_and_the_count_of_all(
    client: Any, pm: Any, unit: BusinessUnit
) -> None:
    dev = _add(BOARD_PAGE + 12, phase=Phase.DEV, unit=unit, owner=pm)
    biz = _add(3, phase=Phase.BIZ, unit=unit, owner=pm)
    client.force_login(pm)

    content = html(client.get("/board/"))

    columns = _columns(content)
    assert columns["dev"]["keys"] == [i.key for i in dev[:BOARD_PAGE]]  # in the board's order
    assert columns["dev"]["count"] == BOARD_PAGE + 12
    assert columns["biz"]["keys"] == [i.key for i in biz]
    assert columns["biz"]["count"] == 3
    assert columns["ops"] == {"keys": [], "count": 0, "more": None}
    assert columns["biz"]["more"] is None
    assert f"{BOARD_PAGE + 15} initiatives in progress" in content
    more = columns["dev"]["more"]
    assert more["label"] == f"Show 12 more of {BOARD_PAGE + 12} in Dev"
    assert more["hx-target"] == "closest li" and more["hx-swap"] == "outerHTML"
    assert more["href"] == "/board/?page_dev=2#column-dev"
    assert more["hx"] == "/board/column/?column=dev&page=2"
    # The count is read with its column's name: the header labels the section.
    assert 'aria-labelledby="column-dev"' in content
    assert (
        f'<span class="count">{BOARD_PAGE + 12}<span class="sr-only"> initiatives</span></span>'
        in content
    )


def test_show_more_through_htmx_appends_the_next_page_until_the_end(
    client: Any, pm: Any, unit: BusinessUnit
) -> None:
    dev = _add(2 * BOARD_PAGE + 5, phase=Phase.DEV, unit=unit, owner=pm)
    _add(2, phase=Phase.BIZ, unit=unit, owner=pm)
    client.force_login(pm)
    more = _columns(html(client.get("/board/")))["dev"]["more"]
    assert more["label"] == f"Show {BOARD_PAGE} more of {2 * BOARD_PAGE + 5} in Dev"

    content = html(client.get(more["hx"], **HTMX))

    # The cards of page 2 as list items, then the next "show more": they replace the old one.
    assert content.lstrip().startswith('<li tabindex="-1" autofocus>')
    assert "<html" not in content and "<section" not in content and "<ul" not in content
    assert CARD_KEY.findall(content) == [i.key for i in dev[BOARD_PAGE : 2 * BOARD_PAGE]]
    (more,) = [_more(m) for m in MORE.finditer(content)]
    assert more["label"] == f"Show 5 more of {2 * BOARD_PAGE + 5} in Dev"
    assert more["hx"] == "/board/column/?column=dev&page=3"
    assert more["href"] == "/board/?page_dev=3#column-dev"

    content = html(client.get(more["hx"], **HTMX))
    assert CARD_KEY.findall(content) == [i.key for i in dev[2 * BOARD_PAGE :]]
    assert MORE.search(content) is None  # the end

    # Past the end (the column shrank meanwhile): nothing more, the control goes away.
    assert html(client.get("/board/column/?column=dev&page=9", **HTMX)) == ""


def test_show_more_keeps_every_filter_in_both_links(
    client: Any, pm: Any, other_pm: Any, unit: BusinessUnit, marketing: BusinessUnit
) -> None:
    wanted = _add(BOARD_PAGE + 2, phase=Phase.OPS, unit=marketing, owner=pm, title="Churn")
    _add(5, phase=Phase.OPS, unit=unit, owner=pm, title="Churn")  # another unit
    _add(5, phase=Phase.OPS, unit=marketing, owner=other_pm, title="Churn")  # another owner
    _add(5, phase=Phase.OPS, unit=marketing, owner=pm, title="Pricing")  # no match
    _add(5, phase=Phase.OPS, unit=marketing, owner=pm, title="Churn", status=Status.ON_HOLD)
    client.force_login(pm)
    filters = {"q": "churn", "unit": str(marketing.pk), "accountable": "pm", "status": "active"}

    columns = _columns(html(client.get("/board/", {**filters, "mine": "true"})))

    assert columns["ops"]["count"] == BOARD_PAGE + 2
    assert columns["ops"]["keys"] == [i.key for i in wanted[:BOARD_PAGE]]
    more = columns["ops"]["more"]
    expected = {key: [value] for key, value in filters.items()} | {"mine": ["true"]}
    assert _query(more["hx"]) == expected | {"column": ["ops"], "page": ["2"]}
    assert _query(more["href"]) == expected | {"page_ops": ["2"]}
    assert urlsplit(more["hx"]).path == "/board/column/"
    assert urlsplit(more["href"]).path == "/board/"

    content = html(client.get(more["hx"], **HTMX))
    assert CARD_KEY.findall(content) == [i.key for i in wanted[BOARD_PAGE:]]

    # Page parameters of other columns and unknown parameters do not leak into the links.
    columns = _columns(html(client.get("/board/", {**filters, "page_biz": "3", "junk": "x"})))
    assert _query(columns["ops"]["more"]["hx"]) == {k: [v] for k, v in filters.items()} | {
        "column": ["ops"],
        "page": ["2"],
    }


def test_without_javascript_show_more_leads_to_a_board_page_at_that_columns_next_page(
    client: Any, pm: Any, unit: BusinessUnit
) -> None:
    dev = _add(2 * BOARD_PAGE + 5, phase=Phase.DEV, unit=unit, owner=pm)
    biz = _add(BOARD_PAGE + 1, phase=Phase.BIZ, unit=unit, owner=pm)
    client.force_login(pm)
    href = _columns(html(client.get("/board/", {"unit": unit.pk})))["dev"]["more"]["href"]
    assert href == f"/board/?unit={unit.pk}&page_dev=2#column-dev"

    content = html(client.get(href.split("#")[0]))

    assert "<html" in content
    columns = _columns(content)
    assert columns["dev"]["keys"] == [i.key for i in dev[BOARD_PAGE : 2 * BOARD_PAGE]]
    assert columns["dev"]["count"] == 2 * BOARD_PAGE + 5
    assert f"{BOARD_PAGE + 1}–{2 * BOARD_PAGE} of {2 * BOARD_PAGE + 5}" in content
    assert f'href="/board/?unit={unit.pk}#column-dev">back to the first</a>' in content
    assert columns["biz"]["keys"] == [i.key for i in biz[:BOARD_PAGE]]  # the others stay
    # The next page of Dev keeps the page of Biz, and the other way round.
    assert columns["dev"]["more"]["href"] == f"/board/?unit={unit.pk}&page_dev=3#column-dev"
    assert (
        columns["biz"]["more"]["href"] == f"/board/?unit={unit.pk}&page_biz=2&page_dev=2#column-biz"
    )
    # The htmx URL without htmx (a link opened in a new tab): the same board page.
    response = client.get(f"/board/column/?unit={unit.pk}&column=dev&page=2")
    assert response.status_code == 302
    assert response["Location"] == f"/board/?unit={unit.pk}&page_dev=2#column-dev"


@pytest.mark.parametrize(
    ("page", "shown"),
    [("abc", 1), ("0", 1), ("-1", 1), ("", 1), ("1.5", 1), ("2", 2), ("99999999999", 1), ("7", 3)],
)
def test_odd_page_numbers_show_the_first_or_the_last_page(
    client: Any, pm: Any, unit: BusinessUnit, page: str, shown: int
) -> None:
    dev = _add(2 * BOARD_PAGE + 1, phase=Phase.DEV, unit=unit, owner=pm)
    client.force_login(pm)
    columns = _columns(html(client.get("/board/", {"page_dev": page})))
    start = (shown - 1) * BOARD_PAGE
    assert columns["dev"]["keys"] == [i.key for i in dev[start : start + BOARD_PAGE]]


def test_an_unknown_column_is_404_or_the_board_without_htmx(client: Any, pm: Any) -> None:
    client.force_login(pm)
    assert client.get("/board/column/?column=nope&page=2", **HTMX).status_code == 404
    assert client.get("/board/column/", **HTMX).status_code == 404
    response = client.get("/board/column/?column=nope&page=2&q=x")
    assert response.status_code == 302
    assert response["Location"] == "/board/?q=x"


def test_a_column_page_shows_only_what_the_user_may_see(
    client: Any, stakeholder: Any, pm: Any, unit: BusinessUnit, marketing: BusinessUnit
) -> None:
    # The stakeholder belongs to the standard unit only.
    own = _add(BOARD_PAGE + 3, phase=Phase.BIZ, unit=unit, owner=pm)
    _add(BOARD_PAGE + 3, phase=Phase.BIZ, unit=marketing, owner=pm)
    client.force_login(stakeholder)
    columns = _columns(html(client.get("/board/")))
    assert columns["biz"]["count"] == BOARD_PAGE + 3
    content = html(client.get("/board/column/?column=biz&page=2", **HTMX))
    assert CARD_KEY.findall(content) == [i.key for i in own[BOARD_PAGE:]]
    # Naming another unit is a filter it does not understand: ignored, still only its own.
    columns = _columns(html(client.get("/board/", {"unit": marketing.pk})))
    assert columns["biz"]["count"] == BOARD_PAGE + 3


def test_the_column_page_varies_on_htmx(client: Any, pm: Any, unit: BusinessUnit) -> None:
    _add(BOARD_PAGE + 1, phase=Phase.DEV, unit=unit, owner=pm)
    client.force_login(pm)
    assert "HX-Request" in client.get("/board/column/?column=dev&page=2", **HTMX)["Vary"]
    assert "HX-Request" in client.get("/board/")["Vary"]


def test_card_links_are_the_reversed_urls(client: Any, pm: Any, unit: BusinessUnit) -> None:
    cards = _add(4, phase=Phase.OPS, unit=unit, owner=pm)
    client.force_login(pm)
    content = html(client.get("/board/"))
    for n, initiative in enumerate(cards):
        card = re.search(rf'data-key="{initiative.key}">(.*?)</article>', content, re.S)
        assert card is not None
        body = card[1]
        detail = reverse("initiative-detail", kwargs={"key": initiative.key})
        assert re.findall(r'href="([^"]+)"', body)[:2] == [detail, detail]
        kpis = reverse("initiative-kpis", kwargs={"key": initiative.key})
        assert f'href="{kpis}"' in body  # every card has a KPI with a value
        assert ("health-critical" in body) == (n % 3 == 0)


def test_card_links_follow_the_script_prefix(pm: Any, unit: BusinessUnit) -> None:
    from django.template import Context, Template
    from django.test.utils import override_script_prefix

    (initiative,) = _add(1, phase=Phase.BIZ, unit=unit, owner=pm)
    template = Template(
        '{% load ui %}{{ i|key_url:"initiative-detail" }} {{ i|key_url:"initiative-kpis" }}'
    )
    assert template.render(Context({"i": initiative})) == (
        f"/initiatives/{initiative.key}/ /initiatives/{initiative.key}/dashboard/"
    )
    with override_script_prefix("/portfolio/"):
        assert template.render(Context({"i": initiative})) == (
            f"/portfolio/initiatives/{initiative.key}/ "
            f"/portfolio/initiatives/{initiative.key}/dashboard/"
        )


# Queries and size ----------------------------------------------------------------------------


def test_the_board_runs_the_same_queries_with_10_and_120_initiatives(
    client: Any, pm: Any, other_pm: Any, unit: BusinessUnit, marketing: BusinessUnit
) -> None:
    def add(per_phase_and_unit: int) -> None:
        for phase in Phase:
            for where, owner in ((unit, pm), (marketing, other_pm)):
                _add(per_phase_and_unit, phase=phase, unit=where, owner=owner)

    client.force_login(pm)
    add(1)
    _add(4, phase=Phase.DEV, unit=marketing, owner=pm, status=Status.ON_HOLD)
    assert Initiative.objects.count() == 10
    urls = ["/board/", f"/board/?unit={marketing.pk}", "/board/?q=idea&status=active&mine=true"]
    queries(client, "/board/")  # warm up
    few = {url: queries(client, url) for url in urls}
    few_htmx = queries(client, "/board/column/?column=dev&page=1", **HTMX)

    add(10)
    _add(50, phase=Phase.DEV, unit=marketing, owner=pm)  # Dev, even of one unit, past a page
    assert Initiative.objects.count() == 120
    many = {url: queries(client, url) for url in urls}
    assert many == few
    assert queries(client, "/board/column/?column=dev&page=2", **HTMX) == few_htmx
    # Session, user, the user's roles, the counts, one query per column, the cards' KPI
    # health, the filter form's units (which also check a unit asked for) and program
    # managers; the column page: the counts, its one column and the health.
    assert few == {urls[0]: 10, urls[1]: 10, urls[2]: 10}
    assert few_htmx == 6

    columns = _columns(html(client.get("/board/")))
    assert [columns[p]["count"] for p in ("biz", "dev", "ops")] == [22, 76, 22]
    assert [len(columns[p]["keys"]) for p in ("biz", "dev", "ops")] == [22, BOARD_PAGE, 22]
    columns = _columns(html(client.get(f"/board/?unit={marketing.pk}")))
    assert [columns[p]["count"] for p in ("biz", "dev", "ops")] == [11, 65, 11]
    assert [len(columns[p]["keys"]) for p in ("biz", "dev", "ops")] == [11, BOARD_PAGE, 11]


def test_the_board_html_does_not_grow_with_the_initiatives(
    client: Any, pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(pm)
    _add(120, phase=Phase.BIZ, unit=unit, owner=pm)
    _add(120, phase=Phase.DEV, unit=unit, owner=pm)
    smaller = len(html(client.get("/board/")))
    _add(180, phase=Phase.BIZ, unit=unit, owner=pm)
    _add(180, phase=Phase.DEV, unit=unit, owner=pm)

    content = html(client.get("/board/"))

    columns = _columns(content)
    assert [columns[p]["count"] for p in ("biz", "dev", "ops")] == [300, 300, 0]
    assert [len(columns[p]["keys"]) for p in ("biz", "dev", "ops")] == [BOARD_PAGE, BOARD_PAGE, 0]
    assert len(content) < 200_000
    # The same cards' markup: only the counts in the text differ (120 -> 300, 240 -> 600).
    assert abs(len(content) - smaller) < 100
