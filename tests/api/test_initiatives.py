"""Business units and initiatives: list, filters, ordering, pagination, create, read, edit."""

from __future__ import annotations

import pytest

from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Initiative
from phases.models import Decision
from tests.api.helpers import API, error_of
from tests.factories import BusinessUnitFactory, decide, make_initiative

pytestmark = pytest.mark.django_db

INITIATIVE_FIELDS = {
    "key",
    "title",
    "business_unit",
    "business_unit_id",
    "accountable",
    "phase",
    "status",
    "dev_timebox_weeks",
    "dev_started_at",
    "dev_days_left",
    "dev_overdue",
    "business_problem",
    "business_requirements",
    "use_case",
    "algorithm_translation",
    "data_feasibility",
    "kpi_count",
    "created_at",
    "updated_at",
}


def keys(response):
    return [row["key"] for row in response.json()["results"]]


# Business units


def test_business_units_list_with_stakeholders(api_as, pm, unit):
    BusinessUnitFactory(name="Marketing")

    response = api_as(pm).get(f"{API}/business-units/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert body["results"] == [
        {"id": unit.pk, "name": "Fraud", "description": "", "stakeholders": ["stakeholder"]},
        {
            "id": BusinessUnit.objects.get(name="Marketing").pk,
            "name": "Marketing",
            "description": "",
            "stakeholders": [],
        },
    ]


def test_an_admin_creates_a_business_unit(api_as, admin_user, stakeholder):
    response = api_as(admin_user).post(
        f"{API}/business-units/",
        {"name": "Risk", "description": "Credit risk", "stakeholders": ["stakeholder"]},
        format="json",
    )

    assert response.status_code == 201, response.json()
    unit = BusinessUnit.objects.get(name="Risk")
    assert response.json() == {
        "id": unit.pk,
        "name": "Risk",
        "description": "Credit risk",
        "stakeholders": ["stakeholder"],
    }
    assert list(unit.stakeholders.all()) == [stakeholder]


@pytest.mark.parametrize("who", ["pm", "stakeholder"])
def test_only_admins_create_business_units(request, api_as, who):
    response = api_as(request.getfixturevalue(who)).post(
        f"{API}/business-units/", {"name": "Risk"}, format="json"
    )

    assert response.status_code == 403
    error_of(response)
    assert not BusinessUnit.objects.filter(name="Risk").exists()


def test_a_business_unit_name_is_unique(api_as, admin_user, unit):
    response = api_as(admin_user).post(f"{API}/business-units/", {"name": "fraud"}, format="json")

    assert response.status_code == 400
    assert "name" in error_of(response)["fields"]
    assert BusinessUnit.objects.count() == 1


def test_a_business_unit_stakeholder_must_hold_the_role(api_as, admin_user, pm):
    response = api_as(admin_user).post(
        f"{API}/business-units/", {"name": "Risk", "stakeholders": ["pm"]}, format="json"
    )

    assert response.status_code == 400
    assert "stakeholders" in error_of(response)["fields"]
    assert not BusinessUnit.objects.filter(name="Risk").exists()


def test_an_unknown_stakeholder_is_a_field_error(api_as, admin_user):
    response = api_as(admin_user).post(
        f"{API}/business-units/", {"name": "Risk", "stakeholders": ["ghost"]}, format="json"
    )

    assert response.status_code == 400
    assert "stakeholders" in error_of(response)["fields"]


# Initiative list


@pytest.fixture
def portfolio(pm, other_pm, unit, ready_initiative):
    """[0] in Dev (pm, Fraud, 'Card-fraud detection'); [1] on hold in Biz (pm2, Marketing,
    'Shelf gaps'); [2] active in Biz (pm, Fraud, 'Churn radar')."""
    marketing = BusinessUnitFactory(name="Marketing")
    decide(ready_initiative, Decision.GO, pm)
    held = make_initiative(other_pm, marketing, title="Shelf gaps", use_case="Camera images")
    decide(held, Decision.HOLD, other_pm)
    churn = make_initiative(pm, unit, title="Churn radar")
    return ready_initiative, held, churn


def test_the_list_is_paginated_with_count_next_previous(api_as, pm, portfolio):
    client = api_as(pm)

    first = client.get(f"{API}/initiatives/", {"page_size": 2})

    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3
    assert body["previous"] is None
    assert keys(first) == [portfolio[0].key, portfolio[1].key]
    second = client.get(body["next"])
    assert keys(second) == [portfolio[2].key]
    assert second.json()["next"] is None
    assert second.json()["previous"] is not None


def test_an_initiative_row_has_every_field(api_as, pm, portfolio):
    row = api_as(pm).get(f"{API}/initiatives/").json()["results"][0]

    assert set(row) == INITIATIVE_FIELDS
    assert row["key"] == portfolio[0].key
    assert row["business_unit"] == "Fraud"
    assert row["accountable"] == "pm"
    assert (row["phase"], row["status"]) == ("dev", "active")
    assert row["kpi_count"] == 1
    assert row["dev_days_left"] == 42
    assert row["dev_overdue"] is False


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"phase": "dev"}, [0]),
        ({"phase": "biz"}, [1, 2]),
        ({"status": "on_hold"}, [1]),
        ({"status": "active", "phase": "biz"}, [2]),
        ({"accountable": "pm2"}, [1]),
        ({"accountable": "pm"}, [0, 2]),
        ({"accountable": "nobody"}, []),
        ({"search": "churn"}, [2]),
        ({"search": "camera"}, [1]),
        ({"search": "no such words"}, []),
    ],
)
def test_filters(api_as, pm, portfolio, query, expected):
    response = api_as(pm).get(f"{API}/initiatives/", query)

    assert response.status_code == 200
    assert keys(response) == [portfolio[i].key for i in expected]


def test_search_by_key(api_as, pm, portfolio):
    held = portfolio[1]

    assert keys(api_as(pm).get(f"{API}/initiatives/", {"search": held.key})) == [held.key]


def test_filter_by_business_unit(api_as, pm, portfolio, unit):
    marketing = BusinessUnit.objects.get(name="Marketing")
    client = api_as(pm)

    by_unit = keys(client.get(f"{API}/initiatives/", {"business_unit": unit.pk}))
    assert by_unit == [portfolio[0].key, portfolio[2].key]
    by_marketing = keys(client.get(f"{API}/initiatives/", {"business_unit": marketing.pk}))
    assert by_marketing == [portfolio[1].key]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("id", [0, 1, 2]),
        ("-id", [2, 1, 0]),
        ("title", [0, 2, 1]),
        ("-title", [1, 2, 0]),
    ],
)
def test_ordering(api_as, pm, portfolio, ordering, expected):
    response = api_as(pm).get(f"{API}/initiatives/", {"ordering": ordering})

    assert keys(response) == [portfolio[i].key for i in expected]


@pytest.mark.parametrize(
    "query", [{"phase": "prod"}, {"status": "done"}, {"business_unit": "Fraud"}]
)
def test_a_bad_filter_value_is_400(api_as, pm, portfolio, query):
    response = api_as(pm).get(f"{API}/initiatives/", query)

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == set(query)


# Create


def test_a_program_manager_creates_an_initiative(api_as, pm, unit):
    response = api_as(pm).post(
        f"{API}/initiatives/",
        {
            "title": "  Churn radar ",
            "business_unit": unit.pk,
            "dev_timebox_weeks": 4,
            "business_problem": "Customers leave.",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    created = Initiative.objects.get()
    body = response.json()
    assert body["key"] == f"BDO-{created.pk}"
    assert body["title"] == "Churn radar" == created.title
    assert (body["phase"], body["status"]) == ("biz", "active")
    assert body["accountable"] == "pm"
    assert body["business_unit"] == "Fraud"
    assert body["dev_timebox_weeks"] == 4
    assert body["kpi_count"] == 0
    assert created.accountable == pm
    assert created.created_by == pm
    assert created.business_problem == "Customers leave."


def test_an_admin_makes_a_program_manager_accountable(api_as, admin_user, pm, unit):
    response = api_as(admin_user).post(
        f"{API}/initiatives/",
        {"title": "Churn radar", "business_unit": unit.pk, "accountable": "pm"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["accountable"] == "pm"
    assert Initiative.objects.get().created_by == admin_user


def test_an_admin_must_name_a_program_manager(api_as, admin_user, unit):
    response = api_as(admin_user).post(
        f"{API}/initiatives/", {"title": "Churn radar", "business_unit": unit.pk}, format="json"
    )

    assert response.status_code == 400
    assert "accountable" in error_of(response)["fields"]
    assert not Initiative.objects.exists()


def test_a_program_manager_may_not_make_another_accountable(api_as, pm, other_pm, unit):
    response = api_as(pm).post(
        f"{API}/initiatives/",
        {"title": "Churn radar", "business_unit": unit.pk, "accountable": "pm2"},
        format="json",
    )

    assert response.status_code == 403
    assert not Initiative.objects.exists()


def test_the_accountable_must_be_a_program_manager(api_as, admin_user, scientist, unit):
    response = api_as(admin_user).post(
        f"{API}/initiatives/",
        {"title": "Churn radar", "business_unit": unit.pk, "accountable": "scientist"},
        format="json",
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "not_program_manager"
    assert "accountable" in error_of(response)["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"business_unit": "UNIT"}, "title"),
        ({"title": "x"}, "business_unit"),
        ({"title": "   ", "business_unit": "UNIT"}, "title"),
        ({"title": "x", "business_unit": 9999}, "business_unit"),
        ({"title": "x", "business_unit": "UNIT", "dev_timebox_weeks": 0}, "dev_timebox_weeks"),
        ({"title": "x", "business_unit": "UNIT", "dev_timebox_weeks": 13}, "dev_timebox_weeks"),
    ],
)
def test_invalid_initiatives_are_refused(api_as, pm, unit, body, field):
    body = {k: unit.pk if v == "UNIT" else v for k, v in body.items()}

    response = api_as(pm).post(f"{API}/initiatives/", body, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Initiative.objects.exists()


# Read and edit


def test_get_one_initiative(api_as, stakeholder, initiative):
    response = api_as(stakeholder).get(f"{API}/initiatives/{initiative.key}/")

    assert response.status_code == 200
    assert set(response.json()) == INITIATIVE_FIELDS
    assert response.json()["key"] == initiative.key


def test_the_key_is_case_insensitive(api_as, pm, initiative):
    response = api_as(pm).get(f"{API}/initiatives/bdo-{initiative.pk}/")

    assert response.status_code == 200
    assert response.json()["key"] == initiative.key


def test_the_accountable_edits_the_story(api_as, pm, initiative):
    response = api_as(pm).patch(
        f"{API}/initiatives/{initiative.key}/",
        {"use_case": " Score every transaction. ", "dev_timebox_weeks": 3},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["use_case"] == "Score every transaction."
    assert response.json()["title"] == "Card-fraud detection"
    initiative.refresh_from_db()
    assert initiative.use_case == "Score every transaction."
    assert initiative.dev_timebox_weeks == 3


def test_a_patch_moves_the_initiative_to_another_unit(api_as, admin_user, initiative):
    risk = BusinessUnitFactory(name="Risk")

    response = api_as(admin_user).patch(
        f"{API}/initiatives/{initiative.key}/", {"business_unit": risk.pk}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["business_unit"] == "Risk"
    initiative.refresh_from_db()
    assert initiative.business_unit == risk


def test_accountability_is_not_patched(api_as, pm, other_pm, initiative):
    response = api_as(pm).patch(
        f"{API}/initiatives/{initiative.key}/", {"accountable": "pm2"}, format="json"
    )

    assert response.status_code == 400
    assert error_of(response)["fields"] == {"accountable": ["Unknown field."]}
    initiative.refresh_from_db()
    assert initiative.accountable == pm


@pytest.mark.parametrize("field", ["phase", "status", "key", "kpi_count", "created_at"])
def test_read_only_fields_are_not_patched(api_as, pm, initiative, field):
    response = api_as(pm).patch(
        f"{API}/initiatives/{initiative.key}/", {field: "ops"}, format="json"
    )

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    initiative.refresh_from_db()
    assert (initiative.phase, initiative.status) == ("biz", "active")


def test_a_blank_title_is_refused(api_as, pm, initiative):
    response = api_as(pm).patch(
        f"{API}/initiatives/{initiative.key}/", {"title": ""}, format="json"
    )

    assert response.status_code == 400
    assert "title" in error_of(response)["fields"]


def test_a_closed_initiative_is_not_edited(api_as, pm, initiative):
    decide(initiative, Decision.KILL, pm)

    response = api_as(pm).patch(
        f"{API}/initiatives/{initiative.key}/", {"title": "Again"}, format="json"
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "final_status"
    initiative.refresh_from_db()
    assert initiative.title == "Card-fraud detection"


def test_put_and_delete_are_not_offered(api_as, admin_user, initiative):
    client = api_as(admin_user)
    url = f"{API}/initiatives/{initiative.key}/"

    assert client.put(url, {"title": "x"}, format="json").status_code == 405
    assert client.delete(url).status_code == 405
    assert Initiative.objects.filter(pk=initiative.pk).exists()


def test_an_edit_through_the_service_is_visible(api_as, pm, initiative):
    initiative_services.initiative_update(initiative=initiative, user=pm, title="Renamed")

    assert api_as(pm).get(f"{API}/initiatives/{initiative.key}/").json()["title"] == "Renamed"
