"""Fixtures for the REST API tests: clients (anonymous, token, session) and initiatives in
each phase, built through the services like the rest of the suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import Initiative, TeamRole
from jobs.models import Job
from kpis.models import KPI
from phases.models import Decision
from tests.api.helpers import authenticate
from tests.factories import decide, pass_dev_gate


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    # The throttles count in the default (process-wide) cache: without this, anonymous calls
    # from earlier tests would eat this test's quota and give 429s.
    cache.clear()


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
def engineer2(make_user: Any) -> Any:
    """A data engineer who is on no team."""
    return make_user(Role.DATA_ENGINEER, username="engineer2")


@pytest.fixture
def biz_initiative(initiative: Initiative, pm: Any, scientist: Any, engineer: Any) -> Initiative:
    """The standard initiative in Biz with a data scientist and a data engineer on the team,
    nothing ticked and no KPI."""
    initiative_services.member_add(
        initiative=initiative, member=scientist, role=TeamRole.DATA_SCIENTIST, user=pm
    )
    initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    return initiative


@pytest.fixture
def dev_initiative(ready_initiative: Initiative, pm: Any) -> Initiative:
    """In Dev: KPI 'Fraud caught' (no job), scientist and engineer on the team."""
    return decide(ready_initiative, Decision.GO, pm)


@pytest.fixture
def dev_kpi(dev_initiative: Initiative) -> KPI:
    return dev_initiative.kpis.get(name="Fraud caught")


@pytest.fixture
def ops_initiative(dev_initiative: Initiative, pm: Any, stakeholder: Any) -> Initiative:
    """Active in Ops: its KPI has a Python-calculation job (every 5 minutes) that was
    trial-run; the engineer is on the team, the scientist has left it."""
    pass_dev_gate(dev_initiative, pm=pm, stakeholder=stakeholder)
    return decide(dev_initiative, Decision.GO, pm)


@pytest.fixture
def ops_kpi(ops_initiative: Initiative) -> KPI:
    return ops_initiative.kpis.get(name="Fraud caught")


@pytest.fixture
def ops_job(ops_kpi: KPI) -> Job:
    return Job.objects.get(kpi=ops_kpi)
