"""Handover, team members and iterations."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from bizdevops.roles import Role
from initiatives.models import Handover, Iteration, Membership
from phases.models import Decision
from tests.api.helpers import API, error_of
from tests.factories import decide, make_initiative

pytestmark = pytest.mark.django_db


def url(initiative, tail: str) -> str:
    return f"{API}/initiatives/{initiative.key}/{tail}"


# Handover


def test_the_accountable_hands_over(api_as, pm, other_pm, initiative):
    response = api_as(pm).post(
        url(initiative, "handover/"), {"to": "pm2", "reason": "Parental leave"}, format="json"
    )

    assert response.status_code == 201, response.json()
    handover = Handover.objects.get(initiative=initiative)
    body = response.json()
    assert body["id"] == handover.pk
    assert (body["from_user"], body["to_user"], body["handed_over_by"]) == ("pm", "pm2", "pm")
    assert body["reason"] == "Parental leave"
    assert body["at"]
    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    detail = api_as(pm).get(f"{API}/initiatives/{initiative.key}/").json()
    assert detail["accountable"] == "pm2"


def test_after_a_handover_the_old_owner_may_no_longer_manage(api_as, pm, other_pm, initiative):
    api_as(pm).post(url(initiative, "handover/"), {"to": "pm2", "reason": "Leave"}, format="json")

    response = api_as(pm).patch(
        f"{API}/initiatives/{initiative.key}/", {"title": "Mine still?"}, format="json"
    )

    assert response.status_code == 403


def test_an_admin_hands_over(api_as, admin_user, other_pm, initiative):
    response = api_as(admin_user).post(
        url(initiative, "handover/"), {"to": "pm2", "reason": "Reorganisation"}, format="json"
    )

    assert response.status_code == 201
    assert Handover.objects.get().handed_over_by == admin_user


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "scientist", "reason": "x"}, "to"),
        ({"to": "pm", "reason": "x"}, "to"),
        ({"to": "ghost", "reason": "x"}, "to"),
        ({"reason": "x"}, "to"),
        ({"to": "pm2"}, "reason"),
        ({"to": "pm2", "reason": "   "}, "reason"),
    ],
)
def test_invalid_handovers_are_refused(api_as, pm, other_pm, scientist, initiative, body, field):
    response = api_as(pm).post(url(initiative, "handover/"), body, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Handover.objects.exists()
    initiative.refresh_from_db()
    assert initiative.accountable == pm


def test_a_handover_to_an_inactive_program_manager_is_refused(api_as, pm, other_pm, initiative):
    other_pm.is_active = False
    other_pm.save(update_fields=["is_active"])

    response = api_as(pm).post(
        url(initiative, "handover/"), {"to": "pm2", "reason": "x"}, format="json"
    )

    assert response.status_code == 400
    assert not Handover.objects.exists()


def test_no_handover_of_a_closed_initiative(api_as, pm, other_pm, initiative):
    decide(initiative, Decision.KILL, pm)

    response = api_as(pm).post(
        url(initiative, "handover/"), {"to": "pm2", "reason": "x"}, format="json"
    )

    assert response.status_code == 409
    assert not Handover.objects.exists()


def test_the_handover_appears_in_the_history(api_as, pm, other_pm, initiative):
    api_as(pm).post(url(initiative, "handover/"), {"to": "pm2", "reason": "Leave"}, format="json")

    events = api_as(pm).get(url(initiative, "history/")).json()

    assert events[0]["kind"] == "handover"
    assert events[0]["detail"] == "Leave"


# Members


def test_list_the_team(api_as, stakeholder, biz_initiative):
    response = api_as(stakeholder).get(url(biz_initiative, "members/"))

    assert response.status_code == 200
    rows = response.json()
    assert [(row["user"], row["role"]) for row in rows] == [
        ("engineer", "data_engineer"),
        ("scientist", "data_scientist"),
    ]
    assert set(rows[0]) == {"id", "user", "role", "joined_at"}
    ids = set(Membership.objects.filter(initiative=biz_initiative).values_list("id", flat=True))
    assert {row["id"] for row in rows} == ids


def test_add_a_member(api_as, pm, devops, initiative):
    response = api_as(pm).post(
        url(initiative, "members/"), {"user": "devops", "role": "devops_engineer"}, format="json"
    )

    assert response.status_code == 201, response.json()
    membership = Membership.objects.get(initiative=initiative, user=devops)
    assert response.json()["id"] == membership.pk
    assert (response.json()["user"], response.json()["role"]) == ("devops", "devops_engineer")
    assert membership.added_by == pm
    assert membership.left_at is None


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"user": "devops", "role": "data_scientist"}, "user", 400),
        ({"user": "devops", "role": "boss"}, "role", 400),
        ({"user": "ghost", "role": "devops_engineer"}, "user", 400),
        ({"role": "devops_engineer"}, "user", 400),
        ({"user": "devops"}, "role", 400),
    ],
)
def test_invalid_members_are_refused(api_as, pm, devops, initiative, body, field, status):
    response = api_as(pm).post(url(initiative, "members/"), body, format="json")

    assert response.status_code == status
    assert field in error_of(response)["fields"]
    assert not Membership.objects.filter(initiative=initiative).exists()


def test_a_member_is_not_added_twice(api_as, pm, biz_initiative):
    response = api_as(pm).post(
        url(biz_initiative, "members/"),
        {"user": "engineer", "role": "data_engineer"},
        format="json",
    )

    assert response.status_code == 409
    assert "user" in error_of(response)["fields"]
    assert (
        Membership.objects.filter(initiative=biz_initiative, user__username="engineer").count() == 1
    )


def test_no_data_scientist_joins_in_ops(api_as, pm, make_user, ops_initiative):
    make_user(Role.DATA_SCIENTIST, username="newcomer")

    response = api_as(pm).post(
        url(ops_initiative, "members/"),
        {"user": "newcomer", "role": "data_scientist"},
        format="json",
    )

    assert response.status_code == 409
    assert not Membership.objects.filter(user__username="newcomer").exists()


def test_remove_a_member(api_as, pm, engineer, biz_initiative):
    membership = Membership.objects.get(initiative=biz_initiative, user=engineer)

    response = api_as(pm).delete(url(biz_initiative, f"members/{membership.pk}/"))

    assert response.status_code == 204
    membership.refresh_from_db()
    assert membership.left_at is not None
    assert membership.removed_by == pm
    team = api_as(pm).get(url(biz_initiative, "members/")).json()
    assert [row["user"] for row in team] == ["scientist"]


def test_a_member_who_left_is_404(api_as, pm, engineer, biz_initiative):
    membership = Membership.objects.get(initiative=biz_initiative, user=engineer)
    client = api_as(pm)
    client.delete(url(biz_initiative, f"members/{membership.pk}/"))

    response = client.delete(url(biz_initiative, f"members/{membership.pk}/"))

    assert response.status_code == 404
    error_of(response)


def test_a_membership_of_another_initiative_is_404(api_as, pm, engineer, unit, biz_initiative):
    other = make_initiative(pm, unit, title="Other")
    membership = Membership.objects.get(initiative=biz_initiative, user=engineer)

    response = api_as(pm).delete(url(other, f"members/{membership.pk}/"))

    assert response.status_code == 404
    membership.refresh_from_db()
    assert membership.left_at is None


def test_removing_from_a_closed_initiative_is_409(api_as, pm, engineer, biz_initiative):
    membership = Membership.objects.get(initiative=biz_initiative, user=engineer)
    decide(biz_initiative, Decision.KILL, pm)

    response = api_as(pm).delete(url(biz_initiative, f"members/{membership.pk}/"))

    assert response.status_code == 409
    membership.refresh_from_db()
    assert membership.left_at is None


# Iterations


def test_record_an_iteration_in_dev(api_as, scientist, dev_initiative):
    client = api_as(scientist)

    first = client.post(
        url(dev_initiative, "iterations/"),
        {"tried": "Logistic regression", "business_feedback": "Too many false alarms"},
        format="json",
    )
    second = client.post(
        url(dev_initiative, "iterations/"),
        {"tried": "Gradient boosting", "happened_on": str(timezone.localdate())},
        format="json",
    )

    assert first.status_code == 201, first.json()
    assert second.status_code == 201, second.json()
    assert first.json()["number"] == 1
    assert second.json()["number"] == 2
    assert first.json()["recorded_by"] == "scientist"
    assert first.json()["business_feedback"] == "Too many false alarms"
    rows = Iteration.objects.filter(initiative=dev_initiative).order_by("number")
    assert [(i.number, i.tried) for i in rows] == [
        (1, "Logistic regression"),
        (2, "Gradient boosting"),
    ]
    assert rows[0].feedback_at is not None


def test_list_iterations_newest_first(api_as, pm, stakeholder, dev_initiative):
    client = api_as(pm)
    for tried in ("one", "two"):
        client.post(url(dev_initiative, "iterations/"), {"tried": tried}, format="json")

    response = api_as(stakeholder).get(url(dev_initiative, "iterations/"))

    assert response.status_code == 200
    assert [(row["number"], row["tried"]) for row in response.json()] == [(2, "two"), (1, "one")]
    assert set(response.json()[0]) == {
        "number",
        "tried",
        "business_feedback",
        "happened_on",
        "recorded_by",
        "created_at",
    }


def test_iterations_are_recorded_in_dev_only(api_as, pm, biz_initiative):
    response = api_as(pm).post(
        url(biz_initiative, "iterations/"), {"tried": "Too early"}, format="json"
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "wrong_phase"
    assert not Iteration.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "tried"),
        ({"tried": "  "}, "tried"),
        ({"tried": "x", "happened_on": "yesterday"}, "happened_on"),
        ({"tried": "x", "happened_on": "FUTURE"}, "happened_on"),
    ],
)
def test_invalid_iterations_are_refused(api_as, pm, dev_initiative, body, field):
    if body.get("happened_on") == "FUTURE":
        body["happened_on"] = str(timezone.localdate() + dt.timedelta(days=2))

    response = api_as(pm).post(url(dev_initiative, "iterations/"), body, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Iteration.objects.exists()
