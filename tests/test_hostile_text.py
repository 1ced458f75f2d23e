"""Control and bidirectional-override characters through the HTML forms and the admin: a
field error on the form, the input kept, nothing written. (The API doors are in
tests/api/test_hostile_input.py, the character rules in tests/bizdevops/test_text.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from initiatives.models import BusinessUnit, Initiative
from kpis.models import KPI
from phases.models import Criterion, GateDecision
from tests.factories import FULL_STORY
from tests.helpers import html, page_of

pytestmark = pytest.mark.django_db

RLO = "\u202e"


def _field_errors(response: Any, form: str = "form") -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in response.context[form].errors.items()}


def test_initiative_form_refuses_an_override_in_the_title(client, pm, unit):
    client.force_login(pm)
    data = {"title": f"Fraud{RLO}gnp.exe", "business_unit": unit.pk, "dev_timebox_weeks": 6}
    data.update(FULL_STORY)

    response = client.post("/initiatives/new/", data)

    content = html(response, 400)
    errors = _field_errors(response)
    assert list(errors) == ["title"], errors
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in errors["title"][0]
    assert FULL_STORY["business_problem"] in content  # the input is kept
    assert not Initiative.objects.exists()


def test_initiative_form_keeps_newlines_in_the_story(client, pm, unit):
    client.force_login(pm)
    story = "Line one\r\nLine two\n\ttabbed"
    data = {"title": "Churn", "business_unit": unit.pk, "dev_timebox_weeks": 6}
    data.update(FULL_STORY, business_problem=story)

    assert client.post("/initiatives/new/", data).status_code == 302
    assert Initiative.objects.get().business_problem == story


def test_initiative_form_refuses_a_control_in_the_story(client, pm, unit):
    client.force_login(pm)
    data = {"title": "Churn", "business_unit": unit.pk, "dev_timebox_weeks": 6}
    data.update(FULL_STORY, use_case="Escape \x1b[2J clears a terminal")

    response = client.post("/initiatives/new/", data)

    html(response, 400)
    assert list(_field_errors(response)) == ["use_case"]
    assert not Initiative.objects.exists()


def test_kpi_form_refuses_an_override_in_the_unit(client, pm, initiative):
    client.force_login(pm)

    response = client.post(
        page_of(initiative, "kpis/"),
        {"name": "Fraud caught", "unit": f"{RLO}%", "direction": "higher"},
    )

    content = html(response, 400)
    assert "U+202E" in content
    assert not KPI.objects.exists()


def test_decision_form_refuses_an_isolate_in_the_rationale(client, pm, initiative):
    client.force_login(pm)

    response = client.post(
        page_of(initiative, "decisions/"), {"decision": "hold", "rationale": "Wait\u2067ing"}
    )

    content = html(response, 400)
    assert "U+2067" in content
    assert not GateDecision.objects.exists()


def test_admin_refuses_an_override_in_a_business_unit_name(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        "/admin/initiatives/businessunit/add/", {"name": f"Risk{RLO}", "description": ""}
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["name"], errors
    assert not BusinessUnit.objects.filter(name__startswith="Risk").exists()


def test_admin_refuses_an_override_in_a_criterion_title(client, admin_user):
    client.force_login(admin_user)
    criterion = Criterion.objects.get(code="business_signoff")
    page = client.get(f"/admin/phases/criterion/{criterion.pk}/change/")
    assert page.status_code == 200
    data = {
        "gate": criterion.gate_id,
        "code": criterion.code,
        "title": f"Signed off{RLO}",
        "description": "Line one\nline two",
        "kind": criterion.kind,
        "check_name": criterion.check_name,
        "tick_policy": criterion.tick_policy,
        "position": criterion.position,
        "active": "on",
    }

    response = client.post(f"/admin/phases/criterion/{criterion.pk}/change/", data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["title"], errors
    criterion.refresh_from_db()
    assert RLO not in criterion.title

    data["title"] = "Signed off"
    assert client.post(f"/admin/phases/criterion/{criterion.pk}/change/", data).status_code == 302
    criterion.refresh_from_db()
    assert criterion.description == "Line one\nline two"
