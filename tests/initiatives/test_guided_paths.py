"""Guided paths on the initiative pages (#13): "Hand over" opens the handover form, the
message after creating links to the team form, empty story fields link to their field, the
person picker offers only people not on the team yet, and people are named the same way
everywhere (`initiatives.people.person_name`, the `{% person %}` tag)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.template import Context, Template

from bizdevops.roles import Role
from initiatives import services
from initiatives.forms import MemberForm
from initiatives.models import BusinessUnit, Initiative, TeamRole
from initiatives.people import ambiguous_names, person_name
from tests.helpers import HTMX, html, page_of, section


def _name(user: Any, first: str, last: str) -> Any:
    type(user).objects.filter(pk=user.pk).update(first_name=first, last_name=last)
    user.refresh_from_db()
    return user


def test_hand_over_opens_the_form_and_focuses_it(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    page = html(client.get(page_of(initiative)))
    assert f'href="{page_of(initiative, "handover/")}#handover-to"' in page
    closed = section(page, "handover")
    assert "<details>" in closed  # on the initiative page itself it stays folded

    handover = section(html(client.get(page_of(initiative, "handover/"))), "handover")
    assert "<details open>" in handover
    assert re.search(r'<select name="to"[^>]*id="handover-to"[^>]*autofocus', handover)
    # With htmx too (the partial), and after a refused POST.
    assert "<details open>" in html(client.get(page_of(initiative, "handover/"), **HTMX))
    refused = html(client.post(page_of(initiative, "handover/"), {"to": other_pm.pk}), 400)
    assert "<details open>" in section(refused, "handover")


def test_the_message_after_creating_links_to_the_team_form(
    client: Any, pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(pm)
    response = client.post(
        "/initiatives/new/",
        {"title": "Churn", "business_unit": unit.pk, "dev_timebox_weeks": 6},
        follow=True,
    )
    content = html(response)
    assert 'created. Next: <a href="#team-person">staff its team</a>' in content
    team = section(content, "team")
    assert '<select name="user" id="team-person"' in team
    assert '<label for="team-person"' in team


def test_empty_story_fields_link_to_their_field(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    services.initiative_update(initiative=initiative, user=pm, use_case="Score transactions")
    client.force_login(pm)
    story = section(html(client.get(page_of(initiative))), "story")
    for field in ("business_problem", "business_requirements", "algorithm_translation"):
        assert f'href="{page_of(initiative, "edit/")}?focus={field}#id_{field}"' in story
    assert "?focus=use_case" not in story  # written
    assert "Write the business problem" in story

    edit = html(client.get(page_of(initiative, "edit/") + "?focus=algorithm_translation"))
    assert re.search(r'<textarea name="algorithm_translation"[^>]*autofocus', edit)
    assert edit.count("autofocus") == 1
    unknown = html(client.get(page_of(initiative, "edit/") + "?focus=accountable"))
    assert "autofocus" not in unknown

    client.force_login(engineer)  # may not edit: no link
    story = section(html(client.get(page_of(initiative))), "story")
    assert "?focus=" not in story
    assert "Not written yet." in story


def _offered(form: MemberForm) -> set[int]:
    field: Any = form.fields["user"]
    return {int(value.value) for value, _ in field.choices if value}


def test_the_person_picker_offers_only_people_not_on_the_team(
    pm: Any,
    engineer: Any,
    engineer2: Any,
    scientist: Any,
    devops: Any,
    stakeholder: Any,
    other_pm: Any,
    initiative: Initiative,
) -> None:
    services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    offered = _offered(MemberForm(initiative=initiative))
    assert offered == {engineer2.pk, scientist.pk, devops.pk, stakeholder.pk}
    assert engineer.pk not in offered and pm.pk not in offered and other_pm.pk not in offered


def test_the_person_picker_names_people_as_everywhere(
    client: Any, pm: Any, engineer2: Any, initiative: Initiative
) -> None:
    _name(engineer2, "Grace", "Hopper")
    client.force_login(pm)
    team = section(html(client.get(page_of(initiative))), "team")
    assert f'<option value="{engineer2.pk}">Grace Hopper</option>' in team


def test_in_ops_the_picker_offers_no_data_scientist(
    pm: Any, scientist: Any, engineer2: Any, ops_initiative: Initiative
) -> None:
    form = MemberForm(initiative=ops_initiative)
    offered = _offered(form)
    assert scientist.pk not in offered
    assert engineer2.pk in offered
    role: Any = form.fields["role"]
    roles = {value for value, _ in role.choices}
    assert TeamRole.DATA_SCIENTIST not in roles


def test_a_member_posted_again_gets_the_service_reason(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    # The picker no longer offers them; a stale page posting them still gets a clear answer.
    services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(pm)
    data = {"user": engineer.pk, "role": TeamRole.DATA_ENGINEER}
    content = html(client.post(page_of(initiative, "team/"), data), 409)
    assert "engineer is on the team as data engineer already." in content


# Names


def test_person_name_is_the_full_name_with_the_username_only_when_shared(
    make_user: Any,
) -> None:
    ada = _name(make_user(Role.DATA_ENGINEER, username="ada"), "Ada", "Lovelace")
    nameless = make_user(Role.DATA_ENGINEER, username="nameless")
    assert person_name(ada) == "Ada Lovelace"
    assert person_name(nameless) == "nameless"
    other = _name(make_user(Role.DATA_SCIENTIST, username="ada2"), "ada ", "LOVELACE")
    assert person_name(ada) == "Ada Lovelace (ada)"
    assert person_name(other) == "ada LOVELACE (ada2)"
    assert ambiguous_names() == frozenset({"ada lovelace"})
    assert person_name(ada, frozenset()) == "Ada Lovelace"  # as a page that asked once
    assert person_name(None) == ""


def test_the_person_tag_asks_once_per_request(
    make_user: Any, django_assert_num_queries: Any, rf: Any
) -> None:
    people = [
        _name(make_user(username=f"p{n}"), "Sam", "Smith" if n < 2 else f"Smith{n}")
        for n in range(4)
    ]
    request = rf.get("/")
    template = Template("{% load ui %}{% for p in people %}{% person p %};{% endfor %}")
    with django_assert_num_queries(1):
        text = template.render(Context({"people": people, "request": request}))
        template.render(Context({"people": people, "request": request}))
    assert text == "Sam Smith (p0);Sam Smith (p1);Sam Smith2;Sam Smith3;"


def test_the_initiative_page_names_people_the_same_way(
    client: Any, pm: Any, engineer: Any, make_user: Any, other_pm: Any, initiative: Initiative
) -> None:
    _name(pm, "Pat", "Manager")
    _name(engineer, "Ada", "Lovelace")
    _name(make_user(Role.DATA_ENGINEER, username="ada2"), "Ada", "Lovelace")
    services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(pm)
    content = html(client.get(page_of(initiative)))
    assert '<strong data-testid="accountable">Pat Manager</strong>' in content
    team = section(content, "team")
    assert "<strong>Ada Lovelace (engineer)</strong>" in team
    assert 'aria-label="Remove Ada Lovelace (engineer) (data engineer)"' in team
    history = section(content, "history")
    assert "Ada Lovelace (engineer) (data engineer) joined" in history
    assert "· Pat Manager" in history

    response = client.post(
        page_of(initiative, "handover/"), {"to": other_pm.pk, "reason": "Leave"}, follow=True
    )
    assert f"pm2 is now accountable for {initiative.key}." in html(response)


@pytest.mark.parametrize("url", ["/", "/board/"])
def test_pages_still_answer(client: Any, pm: Any, initiative: Initiative, url: str) -> None:
    client.force_login(pm)
    html(client.get(url))
