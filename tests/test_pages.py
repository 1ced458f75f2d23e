"""The HTML pages: sign in, sign out, and the home page listing one's own initiatives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import Initiative, TeamRole
from phases.models import Decision
from tests.factories import decide, make_initiative


def _content(response: Any) -> str:
    assert response.status_code == 200
    return response.content.decode()


def test_login_page_renders(client: Any, db: Any) -> None:
    content = _content(client.get("/accounts/login/"))
    assert 'name="username"' in content
    assert 'name="password"' in content
    assert 'type="password"' in content
    assert '<label for="id_username">Username</label>' in content
    assert '<label for="id_password">Password</label>' in content
    assert "csrfmiddlewaretoken" in content


def test_login_redirects_home(client: Any, pm: Any) -> None:
    response = client.post("/accounts/login/", {"username": "pm", "password": "pw", "next": ""})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(pm.pk)


def test_login_follows_next(client: Any, pm: Any) -> None:
    response = client.post("/accounts/login/?next=/", {"username": "pm", "password": "pw"})
    assert (response.status_code, response["Location"]) == (302, "/")


def test_wrong_password_shows_an_error(client: Any, pm: Any) -> None:
    response = client.post("/accounts/login/", {"username": "pm", "password": "nope", "next": ""})
    content = _content(response)
    assert "Please enter a correct username and password" in content
    assert "_auth_user_id" not in client.session


def test_home_sends_anonymous_users_to_login(client: Any, db: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


@pytest.fixture
def two_owners(pm: Any, other_pm: Any, unit: Any) -> tuple[Initiative, Initiative]:
    mine = make_initiative(pm, unit, title="Card-fraud detection")
    theirs = make_initiative(other_pm, unit, title="Churn forecast")
    return mine, theirs


def test_home_lists_what_the_pm_is_accountable_for(
    client: Any, pm: Any, two_owners: tuple[Initiative, Initiative]
) -> None:
    mine, theirs = two_owners
    client.force_login(pm)
    content = _content(client.get("/"))
    assert mine.key in content
    assert "Card-fraud detection" in content
    assert "Fraud" in content  # the business unit
    assert theirs.key not in content
    assert "Churn forecast" not in content
    assert "1 open initiative" in content


def test_home_lists_team_members_initiatives(
    client: Any, pm: Any, engineer: Any, two_owners: tuple[Initiative, Initiative]
) -> None:
    mine, theirs = two_owners
    client.force_login(engineer)
    assert "Card-fraud detection" not in _content(client.get("/"))

    membership = initiative_services.member_add(
        initiative=mine, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    content = _content(client.get("/"))
    assert mine.key in content
    assert "Card-fraud detection" in content
    assert "Churn forecast" not in content

    initiative_services.member_remove(membership=membership, user=pm)
    assert "Card-fraud detection" not in _content(client.get("/"))


def test_home_lists_each_initiative_once(
    client: Any, pm: Any, make_user: Any, two_owners: tuple[Initiative, Initiative]
) -> None:
    mine, _ = two_owners
    both = make_user(Role.DATA_ENGINEER, Role.DEVOPS_ENGINEER, username="ops-engineer")
    for role in (TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER):
        initiative_services.member_add(initiative=mine, member=both, role=role, user=pm)
    client.force_login(both)
    content = _content(client.get("/"))
    assert content.count("Card-fraud detection") == 1
    assert "1 open initiative" in content


def test_home_leaves_out_cancelled_initiatives(
    client: Any, pm: Any, unit: Any, two_owners: tuple[Initiative, Initiative]
) -> None:
    killed = decide(make_initiative(pm, unit, title="Abandoned idea"), Decision.KILL, pm)
    held = decide(make_initiative(pm, unit, title="Waiting for budget"), Decision.HOLD, pm)
    client.force_login(pm)
    content = _content(client.get("/"))
    assert "Abandoned idea" not in content
    assert killed.key not in content
    assert "Waiting for budget" in content
    assert held.key in content
    assert "On hold" in content


def test_home_without_initiatives(client: Any, pm: Any) -> None:
    client.force_login(pm)
    assert "not accountable for, nor on the team of, any open" in _content(client.get("/"))


def test_home_shows_the_dev_timebox(client: Any, pm: Any, ready_initiative: Initiative) -> None:
    in_dev = decide(ready_initiative, Decision.GO, pm)
    client.force_login(pm)
    assert "42 days left" in _content(client.get("/"))

    # Pretend Dev began eight weeks ago: two weeks past the six-week timebox.
    Initiative.objects.filter(pk=in_dev.pk).update(
        dev_started_at=timezone.now() - dt.timedelta(weeks=8)
    )
    assert "overdue by 14 days" in _content(client.get("/"))


def test_home_runs_a_constant_number_of_queries(
    client: Any, pm: Any, engineer: Any, unit: Any
) -> None:
    client.force_login(pm)

    def add(count: int) -> None:
        for n in range(count):
            initiative = make_initiative(pm, unit, title=f"Initiative {n}")
            if n % 2:
                initiative_services.member_add(
                    initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
                )
            if n % 3 == 0:
                decide(initiative, Decision.HOLD, pm)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/")
        assert response.status_code == 200
        return len(captured)

    add(2)
    client.get("/")
    few = queries()
    add(8)
    assert "10 open initiatives" in _content(client.get("/"))
    assert queries() == few


def test_home_has_a_logout_form(client: Any, pm: Any) -> None:
    client.force_login(pm)
    content = _content(client.get("/"))
    assert '<form method="post" action="/accounts/logout/">' in content


def test_logout_is_a_post(client: Any, pm: Any) -> None:
    client.force_login(pm)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.session["_auth_user_id"] == str(pm.pk)

    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session
    assert client.get("/")["Location"] == "/accounts/login/?next=/"
