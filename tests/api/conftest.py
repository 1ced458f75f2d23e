"""Fixtures for the REST API tests: clients (anonymous, token, session) and initiatives in
each phase, built through the services like the rest of the suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from initiatives.models import Initiative
from kpis.models import KPI
from tests.api.helpers import authenticate
from tests.helpers import clear_cache


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    # The throttles count in the default (process-wide) cache: without this, anonymous calls
    # from earlier tests would eat this test's quota and give 429s.
    clear_cache()


@pytest.fixture
def api(db: Any) -> APIClient:
    return APIClient()


@pytest.fixture
def api_as(db: Any) -> Callable[[Any], APIClient]:
    """A new client authenticated with the given user's token (None: anonymous)."""

    def make(user: Any) -> APIClient:
        client = APIClient()
        return client if user is None else authenticate(client, user)

    return make


@pytest.fixture
def dev_kpi(dev_initiative: Initiative) -> KPI:
    return dev_initiative.kpis.get(name="Fraud caught")
