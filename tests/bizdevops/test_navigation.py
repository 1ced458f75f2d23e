"""The navigation links the API docs for admins and engineers (bizdevops.context_processors)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from bizdevops.roles import Role

pytestmark = pytest.mark.django_db

LINK = f'<a href="{reverse("api-docs")}">API docs</a>'


@pytest.mark.parametrize(
    ("roles", "flags", "shown"),
    [
        ([Role.DATA_ENGINEER], {}, True),
        ([Role.DEVOPS_ENGINEER], {}, True),
        ([], {"is_superuser": True, "is_staff": True}, True),
        ([], {"is_staff": True}, True),
        ([Role.PROGRAM_MANAGER], {}, False),
        ([Role.DATA_SCIENTIST], {}, False),
        ([Role.BUSINESS_STAKEHOLDER], {}, False),
        ([], {}, False),
    ],
)
def test_api_docs_link(
    client: Any, make_user: Any, roles: list[Role], flags: dict[str, bool], shown: bool
) -> None:
    client.force_login(make_user(*roles, username="someone", **flags))
    page = client.get(reverse("board")).content.decode()
    assert (LINK in page) is shown


def test_the_linked_docs_answer(client: Any, engineer: Any) -> None:
    client.force_login(engineer)
    assert client.get(reverse("api-docs")).status_code == 200
