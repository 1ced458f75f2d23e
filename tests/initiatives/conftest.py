from __future__ import annotations

from typing import Any

import pytest

from initiatives.models import Initiative
from phases.models import Decision
from tests.factories import decide, pass_dev_gate


@pytest.fixture
def dev_initiative(ready_initiative: Initiative, pm: Any) -> Initiative:
    """The standard initiative, moved into Dev through its gate."""
    return decide(ready_initiative, Decision.GO, pm)


@pytest.fixture
def ops_initiative(dev_initiative: Initiative, pm: Any, stakeholder: Any) -> Initiative:
    """The standard initiative, moved into Ops through both gates."""
    pass_dev_gate(dev_initiative, pm=pm, stakeholder=stakeholder)
    return decide(dev_initiative, Decision.GO, pm)
