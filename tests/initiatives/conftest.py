from __future__ import annotations

from typing import Any

import pytest

from initiatives.models import Initiative
from phases.models import Decision
from tests.factories import decide


@pytest.fixture
def killed(initiative: Initiative, pm: Any) -> Initiative:
    """The standard initiative, cancelled (final)."""
    return decide(initiative, Decision.KILL, pm)
