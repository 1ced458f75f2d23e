"""Page-number pages of the lean lists read their rows and the count of all rows in one
statement (the count a subquery on the list's own table), and answer exactly what they
answered with a separate count: the same bytes, the same empty pages and the same 404s."""

from __future__ import annotations

import re

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bizdevops.api import Pagination
from initiatives.models import Initiative
from tests.api.helpers import API, error_of
from tests.factories import BusinessUnitFactory

pytestmark = pytest.mark.django_db

ROWS = 23
COUNT_SUBQUERY = re.compile(r"\(SELECT COUNT\(\*\) .*?\) AS \"rows_in_all_pages\"", re.S)


@pytest.fixture
def rows(pm, unit):
    other = BusinessUnitFactory(name="Other unit")
    Initiative.objects.bulk_create(
        Initiative(
            title=f"Row {n:02d}",
            business_unit=unit if n % 3 else other,
            accountable=pm,
            created_by=pm,
            phase=("biz", "dev", "ops")[n % 3],
        )
        for n in range(ROWS)
    )


QUERIES = [
    {},
    {"page_size": "5"},
    {"page_size": "5", "page": "2"},
    {"page_size": "5", "page": "5"},  # the last, short page
    {"page_size": "5", "page": "last"},
    {"page_size": "5", "page": "6"},  # past the end: 404
    {"page_size": "5", "page": "0"},
    {"page_size": "5", "page": "-1"},
    {"page_size": "5", "page": "two"},
    {"page_size": "5", "page": "1.5"},
    {"page_size": "5", "page": "99999999999999999999999"},
    {"page": "1", "phase": "ops", "status": "retired"},  # an empty list: count 0
    {"page": "2", "phase": "ops", "status": "retired"},
    {"phase": "dev", "page_size": "3", "page": "2", "ordering": "-title"},
    {"search": "Row 1", "page_size": "4"},
    {"page_size": "500"},  # more than the largest page size: 200
]


@pytest.mark.parametrize("who", ["admin_user", "stakeholder"])
@pytest.mark.parametrize("query", QUERIES, ids=[str(q) for q in QUERIES])
def test_one_statement_pages_answer_what_a_separate_count_answered(
    request, api_as, rows, monkeypatch, who, query
):
    client = api_as(request.getfixturevalue(who))

    ours = client.get(f"{API}/initiatives/", query)
    monkeypatch.setattr(Pagination, "django_paginator_class", Paginator)  # count, then rows
    before = client.get(f"{API}/initiatives/", query)

    assert ours.status_code == before.status_code
    assert ours.content == before.content


def _statements(client, query):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"{API}/initiatives/", query)
    # The token's query comes first.
    return response, [q["sql"] for q in captured.captured_queries][1:]


def test_a_page_is_one_statement_with_the_count_on_the_initiative_table_alone(
    api_as, admin_user, rows
):
    response, statements = _statements(api_as(admin_user), {"page_size": "5", "phase": "dev"})

    assert response.json()["count"] == Initiative.objects.filter(phase="dev").count() == 8
    assert len(statements) == 1, statements
    (count,) = COUNT_SUBQUERY.findall(statements[0])
    assert "JOIN" not in count.upper()
    assert "GROUP BY" not in count.upper()


@pytest.mark.parametrize(
    ("query", "status", "queries"),
    [
        ({"page_size": "5", "page": "6"}, 404, 2),  # the empty page, then the count
        ({"phase": "ops", "status": "retired"}, 200, 2),
        ({"page_size": "5", "page": "last"}, 200, 2),  # the count first, to find the page
        ({"page_size": "5", "page": "0"}, 404, 0),  # refused before any query
    ],
)
def test_only_an_empty_page_or_the_last_page_counts_apart(
    api_as, admin_user, rows, query, status, queries
):
    client = api_as(admin_user)
    response, statements = _statements(client, query)

    assert response.status_code == status
    assert len(statements) == queries, statements
    if status == 404:
        assert error_of(response)["message"] == "Invalid page."
    elif "page" in query:
        assert response.json()["count"] == ROWS
    else:
        assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
