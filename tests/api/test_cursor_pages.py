"""Cursor pages (`?pagination=cursor`) on the long lists: every row once, in order, while
rows arrive; a constant number of queries per page; page-number pages stay the default."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from initiatives.models import Initiative
from jobs.models import Run
from tests.api.helpers import API, error_of
from tests.factories import make_initiative
from tests.helpers import counted_get

pytestmark = pytest.mark.django_db

ROWS = 120


@pytest.fixture
def many(pm, unit):
    Initiative.objects.bulk_create(
        Initiative(
            title=f"Bulk {n:03d}",
            business_unit=unit,
            accountable=pm,
            created_by=pm,
            phase=("biz", "dev", "ops")[n % 3],
        )
        for n in range(ROWS)
    )
    return list(Initiative.objects.order_by("id").values_list("pk", flat=True))


def _query_of(link: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(link).query).items()}


def _pages(client, url: str, query: dict[str, str], between=None) -> tuple[list, list[int]]:
    """Every page from the first through the next links: (the rows, queries per page)."""
    rows, counts = [], []
    while True:
        count, response = counted_get(client, url, query)
        body = response.json()
        assert set(body) == {"next", "previous", "results"}
        rows.extend(body["results"])
        counts.append(count)
        if body["next"] is None:
            return rows, counts
        query = _query_of(body["next"])
        if between is not None:
            between()


def test_cursor_pages_give_every_initiative_once_in_order(api_as, admin_user, many):
    rows, counts = _pages(
        api_as(admin_user), f"{API}/initiatives/", {"pagination": "cursor", "page_size": "50"}
    )

    assert [row["key"] for row in rows] == [f"BDO-{pk}" for pk in many]
    assert len(counts) == 3
    assert len(set(counts)) == 1, counts


def test_rows_inserted_while_paging_are_neither_repeated_nor_make_a_gap(
    api_as, admin_user, pm, unit, many
):
    arrived = []

    def insert() -> None:
        arrived.append(make_initiative(pm, unit, title=f"Late {len(arrived)}").pk)
        # One that sorts before the position reached, too: it must not shift the pages.
        Initiative.objects.filter(pk=many[len(arrived)]).update(title="Edited meanwhile")

    rows, _ = _pages(
        api_as(admin_user),
        f"{API}/initiatives/",
        {"pagination": "cursor", "page_size": "50"},
        between=insert,
    )

    keys = [row["key"] for row in rows]
    assert len(keys) == len(set(keys))
    assert keys == [f"BDO-{pk}" for pk in [*many, *arrived]]


def test_filters_and_visibility_hold_on_cursor_pages(api_as, stakeholder, other_pm, many):
    other = make_initiative(other_pm, _foreign_unit(), title="Elsewhere")

    rows, _ = _pages(
        api_as(stakeholder),
        f"{API}/initiatives/",
        {"pagination": "cursor", "page_size": "7", "phase": "ops"},
    )

    keys = [row["key"] for row in rows]
    assert keys == [f"BDO-{pk}" for pk in many[2::3]]
    assert other.key not in keys


def _foreign_unit():
    from tests.factories import BusinessUnitFactory

    return BusinessUnitFactory(name="Elsewhere")


def test_page_number_pages_stay_the_default(api_as, admin_user, many):
    response = api_as(admin_user).get(f"{API}/initiatives/", {"page_size": 50, "page": 3})

    body = response.json()
    assert body["count"] == ROWS
    assert len(body["results"]) == ROWS - 100
    assert body["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"pagination": "pages"}, "pagination"),
        ({"pagination": "cursor", "ordering": "-title"}, "ordering"),
    ],
)
def test_a_wrong_pagination_request_is_a_400(api_as, admin_user, many, query, field):
    response = api_as(admin_user).get(f"{API}/initiatives/", query)

    assert response.status_code == 400
    assert field in error_of(response)["fields"]


def test_a_forged_cursor_is_refused(api_as, admin_user, many):
    response = api_as(admin_user).get(f"{API}/initiatives/", {"cursor": "bz1hYmM="})

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_run_cursor_pages_go_newest_first_through_every_run(api_as, admin_user, ops_job):
    base = timezone.now() - dt.timedelta(days=30)
    Run.objects.bulk_create(
        Run(job=ops_job, scheduled_for=base + dt.timedelta(minutes=n), requested_by=admin_user)
        for n in range(ROWS)
    )
    expected = list(ops_job.runs.order_by("-scheduled_for").values_list("pk", flat=True))

    rows, counts = _pages(
        api_as(admin_user),
        f"{API}/jobs/{ops_job.pk}/runs/",
        {"pagination": "cursor", "page_size": "50"},
    )

    assert [row["id"] for row in rows] == expected
    assert len(set(counts)) == 1, counts


@pytest.mark.parametrize("pagination", ["page", "cursor"])
@pytest.mark.parametrize("who", ["admin_user", "stakeholder"])
def test_initiative_pages_run_the_same_queries_for_5_and_60_rows(
    request, api_as, many, pagination, who
):
    client = api_as(request.getfixturevalue(who))
    counts = []
    for size in (5, 60):
        count, response = counted_get(
            client, f"{API}/initiatives/", {"pagination": pagination, "page_size": size}
        )
        assert len(response.json()["results"]) == size
        counts.append(count)

    assert counts[0] == counts[1]


@pytest.mark.parametrize("pagination", ["page", "cursor"])
def test_an_initiative_page_is_the_token_and_the_rows(api_as, admin_user, many, pagination):
    client = api_as(admin_user)

    count, _ = counted_get(client, f"{API}/initiatives/", {"pagination": pagination})

    # The token, one page of rows (with the count of all, on page-number pages).
    assert count == 2
