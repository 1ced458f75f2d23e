"""Dev iterations and business feedback on the initiative page.
Who may do each action is tested in tests/test_page_permissions.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from initiatives import services as initiative_services
from initiatives.models import Initiative, Iteration, Membership
from kpis.models import KPI
from phases.models import Decision
from tests.factories import decide
from tests.helpers import HTMX, html, is_oob, page_of, section

pytestmark = pytest.mark.django_db


def _today() -> str:
    return timezone.localdate().isoformat()


# Iterations


def test_add_iteration_in_dev(client: Any, pm: Any, dev_initiative: Initiative) -> None:
    client.force_login(pm)
    data = {
        "tried": "Logistic regression baseline",
        "happened_on": _today(),
        "business_feedback": "",
    }
    response = client.post(page_of(dev_initiative, "iterations/"), data)
    assert response.status_code == 302
    assert response["Location"] == page_of(dev_initiative) + "#iterations"

    iteration = Iteration.objects.get()
    assert (iteration.number, iteration.tried, iteration.recorded_by) == (
        1,
        "Logistic regression baseline",
        pm,
    )
    content = html(client.get(response["Location"]))
    assert "Iteration 1 recorded." in content
    assert "Logistic regression baseline" in section(content, "iterations")


def test_add_iteration_with_htmx(client: Any, scientist: Any, dev_initiative: Initiative) -> None:
    client.force_login(scientist)  # a team member records iterations too
    data = {
        "tried": "Gradient boosting",
        "happened_on": _today(),
        "business_feedback": "Promising.",
    }
    content = html(client.post(page_of(dev_initiative, "iterations/"), data, **HTMX))
    assert content.lstrip().startswith('<section class="card" id="iterations"')
    assert "<html" not in content
    assert "Gradient boosting" in section(content, "iterations")
    assert is_oob(content, "gate-panel")
    assert is_oob(content, "history")
    assert Iteration.objects.get().business_feedback == "Promising."


def test_add_iteration_in_biz_is_a_conflict_with_the_message(
    client: Any, pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"tried": "Too early", "happened_on": _today()}
    content = html(client.post(page_of(initiative, "iterations/"), data), 409)
    assert "Iterations are recorded in Dev." in content

    content = html(client.post(page_of(initiative, "iterations/"), data, **HTMX), 409)
    assert content.lstrip().startswith('<section class="card" id="iterations"')
    assert "Iterations are recorded in Dev." in content
    assert not Iteration.objects.exists()


def test_add_iteration_needs_what_was_tried(
    client: Any, pm: Any, dev_initiative: Initiative
) -> None:
    client.force_login(pm)
    content = html(
        client.post(page_of(dev_initiative, "iterations/"), {"tried": "", "happened_on": _today()}),
        400,
    )
    assert "This field is required." in section(content, "iterations")
    assert not Iteration.objects.exists()


def test_add_iteration_in_the_future_is_refused(
    client: Any, pm: Any, dev_initiative: Initiative
) -> None:
    client.force_login(pm)
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    data = {"tried": "Time travel", "happened_on": tomorrow}
    content = html(client.post(page_of(dev_initiative, "iterations/"), data), 400)
    assert "An iteration cannot happen in the future." in section(content, "iterations")
    assert "Time travel" in content
    assert not Iteration.objects.exists()


def test_unit_stakeholder_gives_feedback(
    client: Any, pm: Any, stakeholder: Any, dev_initiative: Initiative
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    client.force_login(stakeholder)
    content = html(client.get(page_of(dev_initiative)))
    assert f'action="{page_of(dev_initiative, "iterations/1/feedback/")}"' in content

    data = {"business_feedback": "Too many false alarms."}
    response = client.post(page_of(dev_initiative, "iterations/1/feedback/"), data)
    assert response.status_code == 302
    assert response["Location"] == page_of(dev_initiative) + "#iterations"
    iteration = Iteration.objects.get()
    assert iteration.business_feedback == "Too many false alarms."
    assert iteration.feedback_at is not None

    content = html(client.get(response["Location"]))
    assert "Feedback on iteration 1 recorded." in content
    assert "Too many false alarms." in section(content, "iterations")


def test_feedback_with_htmx_and_errors(
    client: Any, pm: Any, stakeholder: Any, dev_initiative: Initiative
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    client.force_login(stakeholder)
    url = page_of(dev_initiative, "iterations/1/feedback/")

    content = html(client.post(url, {"business_feedback": ""}, **HTMX), 400)
    assert content.lstrip().startswith('<section class="card" id="iterations"')
    assert "This field is required." in content

    content = html(client.post(url, {"business_feedback": "Fine."}, **HTMX))
    assert content.lstrip().startswith('<section class="card" id="iterations"')
    assert is_oob(content, "gate-panel")
    assert "Fine." in content
    assert client.post(page_of(dev_initiative, "iterations/9/feedback/"), {}).status_code == 404


def test_feedback_after_a_recycle_to_biz_is_a_conflict_with_the_message(
    client: Any, pm: Any, stakeholder: Any, dev_initiative: Initiative
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    decide(dev_initiative, Decision.RECYCLE, pm)
    client.force_login(stakeholder)
    url = page_of(dev_initiative, "iterations/1/feedback/")
    content = html(client.post(url, {"business_feedback": "Late answer."}), 409)
    assert "Business feedback on iterations is given in Dev." in content
    assert Iteration.objects.get().business_feedback == ""


@pytest.mark.parametrize(
    ("tail", "data"),
    [
        ("team/", {"user": "devops", "role": "devops_engineer"}),
        ("kpis/", {"name": "Late KPI", "direction": "higher", "target": "1"}),
        ("iterations/", {"tried": "Late attempt"}),
        ("iterations/1/feedback/", {"business_feedback": "Late answer."}),
    ],
)
def test_closed_initiative_refuses_page_actions(
    client: Any,
    pm: Any,
    devops: Any,
    dev_initiative: Initiative,
    tail: str,
    data: dict[str, str],
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    decide(dev_initiative, Decision.KILL, pm)
    data = {**data, "happened_on": _today()}
    if data.get("user") == "devops":
        data["user"] = str(devops.pk)
    client.force_login(pm)
    content = html(client.post(page_of(dev_initiative, tail), data), 409)
    assert f"{dev_initiative.key} is cancelled" in content
    assert not Membership.objects.filter(user=devops).exists()
    assert not KPI.objects.filter(name="Late KPI").exists()
    assert Iteration.objects.get().business_feedback == ""
