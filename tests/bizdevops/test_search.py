"""The global search: `/search/?q=` over initiatives (key, title, story), KPIs and jobs, only
what the user may see, bounded per group, in a constant number of queries; on PostgreSQL the
initiatives' full-text match uses the GIN index of migration initiatives 0004."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bizdevops import search
from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import Initiative
from initiatives.selectors import initiatives_matching
from kpis import services as kpi_services
from tests.factories import BusinessUnitFactory, make_initiative

pytestmark = pytest.mark.django_db


def _groups(client: Any, user: Any, q: str) -> dict[str, list[str]]:
    client.force_login(user)
    response = client.get(reverse("search"), {"q": q})
    assert response.status_code == 200
    return {group.kind: [hit.title for hit in group.hits] for group in response.context["groups"]}


@pytest.fixture
def marketing(make_user: Any) -> Any:
    """A second unit with its own stakeholder and an initiative that also mentions fraud."""
    unit = BusinessUnitFactory(name="Marketing")
    unit.stakeholders.add(make_user(Role.BUSINESS_STAKEHOLDER, username="marketer"))
    return unit


def test_finds_an_initiative_by_its_key(client: Any, pm: Any, initiative: Initiative) -> None:
    make_initiative(pm, initiative.business_unit, title="Another one")
    found = _groups(client, pm, initiative.key.lower())
    assert found["initiatives"] == [f"{initiative.key} Card-fraud detection"]


def test_finds_initiatives_by_title_and_story_words(
    client: Any, pm: Any, initiative: Initiative
) -> None:
    initiative_services.initiative_update(
        initiative=initiative, user=pm, use_case="Score every card transaction at checkout."
    )
    make_initiative(pm, initiative.business_unit, title="Churn prediction")
    title = f"{initiative.key} Card-fraud detection"
    assert _groups(client, pm, "fraud")["initiatives"] == [title]
    # A word of the story, and the beginning of a word.
    assert _groups(client, pm, "checkout")["initiatives"] == [title]
    assert _groups(client, pm, "transact")["initiatives"] == [title]
    # Every word must match.
    assert _groups(client, pm, "fraud churn")["initiatives"] == []
    assert _groups(client, pm, "churn")["initiatives"] == [
        f"{Initiative.objects.get(title='Churn prediction').key} Churn prediction"
    ]


def test_order_key_then_title_then_newest(client: Any, pm: Any, initiative: Initiative) -> None:
    unit = initiative.business_unit
    story = make_initiative(pm, unit, title="Chargebacks", business_problem="Fraud in refunds.")
    newer = make_initiative(pm, unit, title="Fraud rings")
    keyed = make_initiative(pm, unit, title="Pricing")
    found = _groups(client, pm, f"fraud {keyed.key}")["initiatives"]
    assert found == [
        f"{keyed.key} Pricing",  # the key first
        f"{newer.key} Fraud rings",  # then titles with the word, newest first
        f"{initiative.key} Card-fraud detection",
        f"{story.key} Chargebacks",  # then the story
    ]


def test_operators_typed_are_words(client: Any, pm: Any, initiative: Initiative) -> None:
    # Nothing a user types reaches the tsquery syntax as an operator (no error, no match-all).
    for q in ["fraud & !", "':* | (", "fraud:*", "!!", "\\"]:
        client.force_login(pm)
        assert client.get(reverse("search"), {"q": q}).status_code == 200
    assert _groups(client, pm, "fraud & !")["initiatives"] == [
        f"{initiative.key} Card-fraud detection"
    ]


def test_a_stakeholder_finds_only_their_units(
    client: Any, pm: Any, stakeholder: Any, ops_job: Any, marketing: Any
) -> None:
    theirs = make_initiative(pm, marketing, title="Coupon fraud in campaigns")
    kpi_services.kpi_define(initiative=theirs, user=pm, name="Fraud caught in coupons", unit="%")
    found = _groups(client, stakeholder, "fraud")
    assert found["initiatives"] == [f"{ops_job.kpi.initiative.key} Card-fraud detection"]
    assert found["kpis"] == ["Fraud caught"]
    assert found["jobs"] == ["Job for Fraud caught"]
    # Not even by its key.
    assert _groups(client, stakeholder, theirs.key)["initiatives"] == []
    # The portfolio roles see both.
    assert len(_groups(client, pm, "fraud")["initiatives"]) == 2


def test_someone_without_a_role_finds_nothing(client: Any, make_user: Any, ops_job: Any) -> None:
    found = _groups(client, make_user(username="nobody"), "fraud")
    assert found == {"initiatives": [], "kpis": [], "jobs": []}


def test_finds_kpis_and_jobs(client: Any, engineer: Any, ops_job: Any) -> None:
    found = _groups(client, engineer, "caught")
    assert found["kpis"] == ["Fraud caught"]
    assert found["jobs"] == ["Job for Fraud caught"]
    # A job by its named calculation; an initiative's key finds its KPIs and jobs too.
    assert _groups(client, engineer, "initiatives_in_ops")["jobs"] == ["Job for Fraud caught"]
    by_key = _groups(client, engineer, ops_job.kpi.initiative.key)
    assert by_key["kpis"] == ["Fraud caught"]
    assert by_key["jobs"] == ["Job for Fraud caught"]


def test_hits_link_to_their_pages(client: Any, engineer: Any, ops_job: Any) -> None:
    client.force_login(engineer)
    response = client.get(reverse("search"), {"q": "fraud"})
    key = ops_job.kpi.initiative.key
    for url in [
        reverse("initiative-detail", args=[key]),
        reverse("initiative-kpis", args=[key]) + f"#chart-{ops_job.kpi.pk}",
        reverse("job-detail", args=[ops_job.pk]),
    ]:
        assert f'href="{url}"' in response.content.decode()
        assert client.get(url.split("#")[0]).status_code == 200


def test_each_group_is_bounded(client: Any, pm: Any, unit: Any) -> None:
    for n in range(search.PER_GROUP + 2):
        make_initiative(pm, unit, title=f"Fraud model {n}")
    client.force_login(pm)
    response = client.get(reverse("search"), {"q": "fraud"})
    (initiatives,) = [g for g in response.context["groups"] if g.kind == "initiatives"]
    assert len(initiatives.hits) == search.PER_GROUP
    assert initiatives.more
    assert "add a word to narrow the search" in response.content.decode()


def _count_queries(client: Any, q: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("search"), {"q": q}).status_code == 200
    return len(queries)


@pytest.mark.parametrize("role", [Role.PROGRAM_MANAGER, Role.BUSINESS_STAKEHOLDER])
def test_constant_number_of_queries(
    client: Any, make_user: Any, pm: Any, ops_job: Any, unit: Any, role: Role
) -> None:
    user = make_user(role, username="searcher")
    unit.stakeholders.add(user)
    client.force_login(user)
    client.get(reverse("search"), {"q": "fraud"})  # the session's first request does more
    few = _count_queries(client, "fraud")
    for n in range(15):
        initiative = make_initiative(pm, unit, title=f"Fraud model {n}")
        kpi_services.kpi_define(initiative=initiative, user=pm, name=f"Fraud rate {n}", unit="%")
    many = _count_queries(client, "fraud")
    assert many == few
    # Session, user, roles, and one query per group at most.
    assert many <= 3 + 3


def test_a_short_query_asks_for_more(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    response = client.get(reverse("search"), {"q": "f"})
    assert response.context["groups"] == []
    assert "Type at least 2 characters" in response.content.decode()
    response = client.get(reverse("search"), {"q": "zzzz"})
    assert "Nothing you may see matches" in response.content.decode()


def test_needs_a_login(client: Any) -> None:
    response = client.get(reverse("search"), {"q": "fraud"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_navigation_has_the_search_form(client: Any, pm: Any) -> None:
    client.force_login(pm)
    page = client.get(reverse("board")).content.decode()
    assert (
        f'<form class="nav-search" role="search" method="get" action="{reverse("search")}">' in page
    )
    assert '<label class="sr-only" for="nav-search-q">' in page
    # On the results page the box keeps the words.
    page = client.get(reverse("search"), {"q": "card fraud"}).content.decode()
    assert 'id="nav-search-q" name="q" value="card fraud"' in page


@pytest.mark.postgres
def test_postgres_uses_the_full_text_index(pm: Any, initiative: Initiative) -> None:
    """The query's document expression is the index's: with sequential scans off, the plan
    reads initiative_search (a mismatch would leave no choice but a sequential scan)."""
    rows = initiatives_matching("fraud detect", pm)
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "initiative_search" in plan, plan
    assert list(rows) == [initiative]


def test_the_api_answers_what_the_page_shows(
    client: Any, engineer: Any, stakeholder: Any, ops_job: Any, pm: Any, marketing: Any
) -> None:
    make_initiative(pm, marketing, title="Coupon fraud in campaigns")
    client.force_login(engineer)
    body = client.get("/api/v1/search/", {"q": "fraud"}).json()
    assert body["q"] == "fraud"
    groups = {group["kind"]: group for group in body["groups"]}
    assert [hit["title"] for hit in groups["kpis"]["hits"]] == ["Fraud caught"]
    assert groups["jobs"]["hits"][0]["url"] == reverse("job-detail", args=[ops_job.pk])
    assert len(groups["initiatives"]["hits"]) == 2
    assert groups["initiatives"]["more"] is False
    client.force_login(stakeholder)
    body = client.get("/api/v1/search/", {"q": "fraud"}).json()
    assert [g["hits"] for g in body["groups"] if g["kind"] == "initiatives"] == [
        [
            {
                "title": f"{ops_job.kpi.initiative.key} Card-fraud detection",
                "url": reverse("initiative-detail", args=[ops_job.kpi.initiative.key]),
                "detail": "Fraud · Ops · Active",
            }
        ]
    ]


def test_the_api_refuses_a_query_it_cannot_search(client: Any, engineer: Any) -> None:
    client.force_login(engineer)
    response = client.get("/api/v1/search/", {"q": "f"})
    assert response.status_code == 400
    assert "q" in str(response.json())
    # No q: nothing asked, nothing found.
    assert client.get("/api/v1/search/").json() == {"q": "", "groups": []}
    assert client.get("/api/v1/search/", {"q": "f"}).status_code == 400
    client.logout()
    assert client.get("/api/v1/search/", {"q": "fraud"}).status_code in (401, 403)
