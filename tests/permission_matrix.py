"""What the API's and the pages' permission matrices share: the actors (each a user fixture
in a known relation to the initiative), the groups of them the rules name, and the context an
action's URL, body and probe are computed in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

# Actor -> the fixture of its user ("anonymous" has none).
USERS = {
    "stakeholder": "stakeholder",  # of the initiative's business unit, not on the team
    "scientist": "scientist",  # on the team (in Biz and Dev; data scientists leave in Ops)
    "engineer_on_team": "engineer",  # data engineer on the team
    "engineer_off_team": "engineer2",  # data engineer on no team
    "devops_off_team": "devops",  # devops engineer on no team
    "other_pm": "other_pm",
    "accountable_pm": "pm",
    "admin": "admin_user",
}
ROLES = ["anonymous", *USERS]
MANAGERS = {"accountable_pm", "admin"}
TEAM = {"scientist", "engineer_on_team"}
OPERATORS = {"engineer_on_team", "admin"}


@dataclass
class Context:
    state: Any  # the initiative (or None)
    actor: str
    request: pytest.FixtureRequest

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)
