"""Creating and editing an initiative through the pages.
Who may do each action is tested in tests/test_page_permissions.py."""

from __future__ import annotations

from typing import Any

import pytest

from initiatives.models import BusinessUnit, Initiative
from tests.factories import FULL_STORY, BusinessUnitFactory
from tests.helpers import FORBIDDEN, NOT_FOUND, html, page_of

pytestmark = pytest.mark.django_db


def _form_data(unit: BusinessUnit, **overrides: Any) -> dict[str, Any]:
    data = {"title": "Churn forecast", "business_unit": unit.pk, "dev_timebox_weeks": 6}
    data.update(FULL_STORY)
    data.update(overrides)
    return data


# Create


def test_create_form_for_a_program_manager(client: Any, pm: Any, unit: BusinessUnit) -> None:
    client.force_login(pm)
    content = html(client.get("/initiatives/new/"))
    assert "<h1>New initiative</h1>" in content
    assert 'name="title"' in content
    assert 'name="business_problem"' in content
    assert f'<option value="{unit.pk}">Fraud</option>' in content
    assert 'name="accountable"' not in content  # a PM is accountable for what they create


def test_program_manager_creates_and_is_accountable(
    client: Any, pm: Any, other_pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(pm)
    # Naming someone else is ignored for a PM: the field is not on their form.
    response = client.post("/initiatives/new/", _form_data(unit, accountable=other_pm.pk))

    initiative = Initiative.objects.get()
    assert response.status_code == 302
    assert response["Location"] == page_of(initiative)
    assert initiative.title == "Churn forecast"
    assert initiative.accountable == pm
    assert initiative.created_by == pm
    assert initiative.business_problem == FULL_STORY["business_problem"]
    assert initiative.phase == "biz"

    content = html(client.get(response["Location"]))
    assert f"{initiative.key} created." in content


def test_create_sends_anonymous_users_to_login(client: Any, unit: BusinessUnit) -> None:
    response = client.post("/initiatives/new/", _form_data(unit))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not Initiative.objects.exists()


def test_admin_names_another_program_manager(
    client: Any, admin_user: Any, pm: Any, other_pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(admin_user)
    content = html(client.get("/initiatives/new/"))
    assert 'name="accountable"' in content
    assert f'<option value="{other_pm.pk}">pm2</option>' in content

    response = client.post("/initiatives/new/", _form_data(unit, accountable=other_pm.pk))
    initiative = Initiative.objects.get()
    assert response.status_code == 302
    assert response["Location"] == page_of(initiative)
    assert initiative.accountable == other_pm
    assert initiative.created_by == admin_user


def test_admin_without_the_pm_role_must_name_someone(
    client: Any, admin_user: Any, pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(admin_user)
    content = html(client.post("/initiatives/new/", _form_data(unit, accountable="")), 400)
    assert "admin is not an active program manager" in content
    assert not Initiative.objects.exists()


def test_create_form_errors_are_inline_and_keep_the_input(
    client: Any, pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(pm)
    data = _form_data(
        unit,
        title="",
        dev_timebox_weeks=13,
        business_problem="Stock-outs on the shop floor cost sales every weekend.",
        use_case="Forecast demand per store and article.",
    )
    content = html(client.post("/initiatives/new/", data), 400)

    assert "<html" in content
    assert "This field is required." in content
    assert "Ensure this value is less than or equal to 12." in content
    assert "Stock-outs on the shop floor cost sales every weekend." in content
    assert "Forecast demand per store and article." in content
    assert FULL_STORY["algorithm_translation"] in content
    assert 'name="dev_timebox_weeks" value="13"' in content
    assert f'<option value="{unit.pk}" selected>Fraud</option>' in content
    assert not Initiative.objects.exists()


def test_create_refuses_a_blank_title_of_spaces(client: Any, pm: Any, unit: BusinessUnit) -> None:
    client.force_login(pm)
    content = html(client.post("/initiatives/new/", _form_data(unit, title="   ")), 400)
    assert "This field is required." in content
    assert not Initiative.objects.exists()


# Edit


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_accountable_and_admin_edit(
    client: Any, request: Any, who: str, initiative: Initiative, unit: BusinessUnit
) -> None:
    client.force_login(request.getfixturevalue(who))
    content = html(client.get(page_of(initiative, "edit/")))
    assert f"Edit {initiative.key}" in content
    assert 'value="Card-fraud detection"' in content
    assert 'name="accountable"' not in content  # accountability changes by handover only

    marketing = BusinessUnitFactory(name="Marketing")
    data = _form_data(marketing, title="Card-fraud scoring", dev_timebox_weeks=4)
    response = client.post(page_of(initiative, "edit/"), data)
    assert response.status_code == 302
    assert response["Location"] == page_of(initiative)

    initiative.refresh_from_db()
    assert initiative.title == "Card-fraud scoring"
    assert initiative.business_unit == marketing
    assert initiative.dev_timebox_weeks == 4
    assert initiative.use_case == FULL_STORY["use_case"]
    assert initiative.accountable.get_username() == "pm"

    content = html(client.get(page_of(initiative)))
    assert "Card-fraud scoring" in content
    assert f"{initiative.key} saved." in content


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_closed_initiative_cannot_be_edited(
    client: Any, request: Any, who: str, killed: Initiative, unit: BusinessUnit
) -> None:
    client.force_login(request.getfixturevalue(who))
    assert FORBIDDEN in html(client.get(page_of(killed, "edit/")), 403)
    assert FORBIDDEN in html(client.post(page_of(killed, "edit/"), _form_data(unit)), 403)
    killed.refresh_from_db()
    assert killed.business_problem == ""


def test_edit_form_error_keeps_the_input(
    client: Any, pm: Any, initiative: Initiative, unit: BusinessUnit
) -> None:
    client.force_login(pm)
    data = _form_data(unit, dev_timebox_weeks=0, business_problem="Typed, not saved.")
    content = html(client.post(page_of(initiative, "edit/"), data), 400)
    assert "Ensure this value is greater than or equal to 1." in content
    assert "Typed, not saved." in content
    initiative.refresh_from_db()
    assert initiative.business_problem == ""


def test_edit_of_an_unknown_initiative_is_not_found(client: Any, pm: Any) -> None:
    client.force_login(pm)
    assert NOT_FOUND in html(client.get("/initiatives/BDO-999/edit/"), 404)
