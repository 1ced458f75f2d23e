"""The team and the handover of accountability on the initiative page.
Who may do each action is tested in tests/test_page_permissions.py."""

from __future__ import annotations

from typing import Any

import pytest

from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Handover, Initiative, Membership, TeamRole
from phases.models import Decision
from tests.factories import decide, make_initiative
from tests.helpers import FORBIDDEN, HTMX, html, is_oob, page_of, section

pytestmark = pytest.mark.django_db


# Team


def test_add_member_without_htmx_redirects(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    response = client.post(
        page_of(initiative, "team/"), {"user": engineer.pk, "role": "data_engineer"}
    )
    assert response.status_code == 302
    assert response["Location"] == page_of(initiative) + "#team"
    membership = Membership.objects.get(initiative=initiative)
    assert (membership.user, membership.role, membership.added_by) == (
        engineer,
        TeamRole.DATA_ENGINEER,
        pm,
    )

    content = html(client.get(response["Location"]))
    assert 'data-username="engineer"' in section(content, "team")
    assert "engineer joined as data engineer." in content


def test_add_member_with_htmx_returns_team_and_oob_updates(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    response = client.post(
        page_of(initiative, "team/"), {"user": engineer.pk, "role": "data_engineer"}, **HTMX
    )
    content = html(response)

    assert content.lstrip().startswith('<section class="card" id="team"')
    assert "<html" not in content
    assert 'data-username="engineer"' in section(content, "team")
    assert not is_oob(content, "team")
    assert is_oob(content, "gate-panel")
    assert is_oob(content, "history")
    assert "engineer (data engineer) joined" in section(content, "history")
    assert "No data scientist on the team yet." in section(content, "gate-panel")
    assert 'id="messages" aria-live="polite" hx-swap-oob="true"' in content
    assert "engineer joined as data engineer." in content
    for other in ("story", "iterations", "kpis"):
        assert f'id="{other}"' not in content


def test_add_member_in_the_wrong_role_shows_the_error(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"user": engineer.pk, "role": "data_scientist"}
    content = html(client.post(page_of(initiative, "team/"), data), 400)
    assert "<html" in content
    assert "engineer does not hold the role data scientist." in section(content, "team")
    assert not Membership.objects.exists()

    content = html(client.post(page_of(initiative, "team/"), data, **HTMX), 400)
    assert content.lstrip().startswith('<section class="card" id="team"')
    assert "engineer does not hold the role data scientist." in content
    assert not Membership.objects.exists()


def test_add_member_form_error(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    content = html(client.post(page_of(initiative, "team/"), {"role": "nonsense"}), 400)
    assert "This field is required." in content
    assert "Select a valid choice." in content


def test_add_member_twice_is_a_conflict(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"user": engineer.pk, "role": "data_engineer"}
    client.post(page_of(initiative, "team/"), data)
    content = html(client.post(page_of(initiative, "team/"), data), 409)
    assert "engineer is on the team as data engineer already." in content
    assert Membership.objects.count() == 1


def test_add_member_needs_post(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    assert client.get(page_of(initiative, "team/")).status_code == 405


def test_remove_member_keeps_the_row(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    membership = initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(pm)
    response = client.post(page_of(initiative, f"team/{membership.pk}/remove/"))
    assert response.status_code == 302
    assert response["Location"] == page_of(initiative) + "#team"

    membership.refresh_from_db()
    assert membership.left_at is not None
    assert membership.removed_by == pm
    content = html(client.get(page_of(initiative)))
    assert 'data-username="engineer"' not in section(content, "team")
    assert "engineer (data engineer) left" in section(content, "history")

    # Removing again: the membership is no longer active.
    assert client.post(page_of(initiative, f"team/{membership.pk}/remove/")).status_code == 404


def test_remove_member_with_htmx(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    membership = initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(pm)
    content = html(client.post(page_of(initiative, f"team/{membership.pk}/remove/"), **HTMX))
    assert content.lstrip().startswith('<section class="card" id="team"')
    assert 'data-username="engineer"' not in section(content, "team")
    assert is_oob(content, "gate-panel")
    assert is_oob(content, "history")
    assert Membership.objects.filter(pk=membership.pk, left_at__isnull=False).exists()


def test_remove_member_of_another_initiative_is_not_found(
    client: Any, pm: Any, engineer: Any, unit: BusinessUnit, initiative: Initiative
) -> None:
    other = make_initiative(pm, unit, title="Other")
    membership = initiative_services.member_add(
        initiative=other, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(pm)
    assert client.post(page_of(initiative, f"team/{membership.pk}/remove/")).status_code == 404


def test_remove_member_of_a_closed_initiative_is_refused_not_a_crash(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    membership = initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    decide(initiative, Decision.KILL, pm)
    client.force_login(pm)
    client.raise_request_exception = False
    response = client.post(page_of(initiative, f"team/{membership.pk}/remove/"))
    # The service refuses (closed initiative); every other action turns that refusal into
    # a 409 page, not a server error.
    assert response.status_code == 409
    assert (
        f"{initiative.key} is cancelled; it can no longer be changed." in response.content.decode()
    )
    membership.refresh_from_db()
    assert membership.left_at is None


# Handover


def test_handover_form(client: Any, pm: Any, other_pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    content = html(client.get(page_of(initiative, "handover/")))
    assert "<html" in content
    handover = section(content, "handover")
    assert f'action="{page_of(initiative, "handover/")}"' in handover
    assert 'name="reason"' in handover
    assert f'<option value="{other_pm.pk}">pm2</option>' in handover
    assert f'<option value="{pm.pk}">' not in handover  # not to oneself


def test_handover_form_with_htmx_is_the_partial(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    content = html(client.get(page_of(initiative, "handover/"), **HTMX))
    assert content.lstrip().startswith('<section class="card" id="handover"')
    assert "<html" not in content
    assert 'name="reason"' in content


def test_hand_over_without_htmx(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": other_pm.pk, "reason": "Moving to the Risk programme"}
    response = client.post(page_of(initiative, "handover/"), data)
    assert response.status_code == 302
    assert response["Location"] == page_of(initiative) + "#team"

    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    handover = Handover.objects.get()
    assert (handover.from_user, handover.to_user, handover.handed_over_by) == (pm, other_pm, pm)
    assert handover.reason == "Moving to the Risk programme"
    content = html(client.get(response["Location"]))
    assert f"pm2 is now accountable for {initiative.key}." in content
    assert "Moving to the Risk programme" in section(content, "history")
    # The former owner no longer manages it.
    assert 'id="decision-form"' not in content


def test_hand_over_with_htmx_reloads_the_page(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": other_pm.pk, "reason": "Rebalancing"}
    response = client.post(page_of(initiative, "handover/"), data, **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == page_of(initiative)
    initiative.refresh_from_db()
    assert initiative.accountable == other_pm


def test_admin_hands_over(
    client: Any, admin_user: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(admin_user)
    data = {"to": other_pm.pk, "reason": "Re-org"}
    response = client.post(page_of(initiative, "handover/"), data)
    assert response.status_code == 302
    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    assert Handover.objects.get().handed_over_by == admin_user


def test_hand_over_needs_a_reason(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": other_pm.pk, "reason": "  "}
    content = html(client.post(page_of(initiative, "handover/"), data), 400)
    assert "This field is required." in section(content, "handover")
    assert "<details open>" in section(content, "handover")

    content = html(client.post(page_of(initiative, "handover/"), data, **HTMX), 400)
    assert content.lstrip().startswith('<section class="card" id="handover"')
    assert "This field is required." in content
    initiative.refresh_from_db()
    assert initiative.accountable == pm
    assert not Handover.objects.exists()


def test_hand_over_to_a_non_pm_is_refused(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": engineer.pk, "reason": "Why not"}
    content = html(client.post(page_of(initiative, "handover/"), data), 400)
    assert "Select a valid choice." in content
    assert not Handover.objects.exists()


def test_closed_initiative_cannot_be_handed_over(
    client: Any, pm: Any, other_pm: Any, killed: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": other_pm.pk, "reason": "Too late"}
    assert FORBIDDEN in html(client.post(page_of(killed, "handover/"), data), 403)
    assert not Handover.objects.exists()
