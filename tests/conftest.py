from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from bizdevops.roles import Role
from initiatives.models import BusinessUnit, Initiative
from tests.factories import (
    BusinessUnitFactory,
    UserFactory,
    decide,
    make_initiative,
    pass_biz_gate,
    pass_dev_gate,
)
from tests.helpers import missing_service


def _redis_url() -> str:
    return os.environ.get("REDIS_URL", "")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if item.get_closest_marker("redis"):
        url = _redis_url()
        if not url:
            missing_service("needs Redis: set REDIS_URL=redis://...")
        else:
            import redis

            try:
                redis.Redis.from_url(url, socket_connect_timeout=2).ping()
            except redis.RedisError as error:
                missing_service(f"Redis at {url} does not answer: {error}")


# Cache keys of this run (throttle counters) live under their own prefix: a shared Redis may
# hold another run's or the application's keys.
CACHE_PREFIX = f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _fresh_cache(settings: Any) -> Iterator[None]:
    """No throttle budget leaks from one test into the next."""
    from tests.helpers import clear_cache

    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": CACHE_PREFIX}}
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(autouse=True)
def _no_pooled_source_connections() -> Iterator[None]:
    """Data source connections that a run pooled (jobs.sources) end with the test: they
    belong to roles the test drops, on the test database that the session drops."""
    yield
    from jobs import sources

    sources.connections_close()


@pytest.fixture(autouse=True)
def _test_settings(settings: Any, tmp_path: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DEMO_WAREHOUSE_PATH = tmp_path / "warehouse.sqlite3"
    # pytest-django runs tests with DEBUG off, where encrypting a data source URL needs a key.
    settings.DATA_SOURCE_KEY = Fernet.generate_key().decode()


@pytest.fixture
def make_user(db: Any) -> Any:
    def make(*roles: Role, username: str | None = None, **kwargs: Any) -> Any:
        if username is not None:
            kwargs["username"] = username
        return UserFactory(roles=roles, **kwargs)

    return make


@pytest.fixture
def pm(make_user: Any) -> Any:
    return make_user(Role.PROGRAM_MANAGER, username="pm")


@pytest.fixture
def other_pm(make_user: Any) -> Any:
    return make_user(Role.PROGRAM_MANAGER, username="pm2")


@pytest.fixture
def scientist(make_user: Any) -> Any:
    return make_user(Role.DATA_SCIENTIST, username="scientist")


@pytest.fixture
def engineer(make_user: Any) -> Any:
    return make_user(Role.DATA_ENGINEER, username="engineer")


@pytest.fixture
def devops(make_user: Any) -> Any:
    return make_user(Role.DEVOPS_ENGINEER, username="devops")


@pytest.fixture
def stakeholder(make_user: Any) -> Any:
    return make_user(Role.BUSINESS_STAKEHOLDER, username="stakeholder")


@pytest.fixture
def admin_user(make_user: Any) -> Any:
    return make_user(username="admin", is_superuser=True, is_staff=True)


@pytest.fixture
def unit(db: Any, stakeholder: Any) -> BusinessUnit:
    unit = BusinessUnitFactory(name="Fraud")
    unit.stakeholders.add(stakeholder)
    return unit


@pytest.fixture
def initiative(pm: Any, unit: BusinessUnit) -> Initiative:
    return make_initiative(pm, unit)


@pytest.fixture
def ready_initiative(
    initiative: Initiative, pm: Any, stakeholder: Any, scientist: Any, engineer: Any
) -> Initiative:
    """An initiative in Biz whose Biz → Dev gate holds."""
    return pass_biz_gate(
        initiative, pm=pm, stakeholder=stakeholder, scientist=scientist, engineer=engineer
    )


@pytest.fixture
def engineer2(make_user: Any) -> Any:
    """A data engineer who is on no team."""
    return make_user(Role.DATA_ENGINEER, username="engineer2")


@pytest.fixture
def biz_initiative(initiative: Initiative, pm: Any, scientist: Any, engineer: Any) -> Initiative:
    """The standard initiative in Biz with a data scientist and a data engineer on the team,
    nothing ticked and no KPI."""
    from initiatives import services as initiative_services
    from initiatives.models import TeamRole

    for member, role in ((scientist, TeamRole.DATA_SCIENTIST), (engineer, TeamRole.DATA_ENGINEER)):
        initiative_services.member_add(initiative=initiative, member=member, role=role, user=pm)
    return initiative


@pytest.fixture
def dev_initiative(ready_initiative: Initiative, pm: Any) -> Initiative:
    """The standard initiative in Dev: KPI 'Fraud caught' (no job), the scientist and the
    engineer on the team."""
    from phases.models import Decision

    return decide(ready_initiative, Decision.GO, pm)


@pytest.fixture
def ops_initiative(dev_initiative: Initiative, pm: Any, stakeholder: Any) -> Initiative:
    """The standard initiative, active in Ops through both gates: its KPI has a Python
    calculation job (every 5 minutes) that was trial-run; the engineer is on the team, the
    scientist has left it."""
    from phases.models import Decision

    pass_dev_gate(dev_initiative, pm=pm, stakeholder=stakeholder)
    return decide(dev_initiative, Decision.GO, pm)


@pytest.fixture
def ops_kpi(ops_initiative: Initiative) -> Any:
    return ops_initiative.kpis.get(name="Fraud caught")


@pytest.fixture
def ops_job(ops_kpi: Any) -> Any:
    from jobs.models import Job

    job = Job.objects.get(kpi=ops_kpi)
    assert job.enabled
    assert (job.schedule_kind, job.interval_seconds) == ("interval", 300)
    return job


@pytest.fixture
def everyone(
    request: pytest.FixtureRequest,
    pm: Any,
    other_pm: Any,
    scientist: Any,
    engineer: Any,
    engineer2: Any,
    devops: Any,
    stakeholder: Any,
    admin_user: Any,
) -> pytest.FixtureRequest:
    """Every user of the permission matrices exists in every case (so that a refusal is
    never about a missing user)."""
    return request


@pytest.fixture
def unreachable_broker() -> Iterator[None]:
    """The real Celery app of this process pointed at a port where nothing listens (Redis
    refusing connections), and back afterwards."""
    from bizdevops.celery import app

    def forget_pools() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    # broker_write_url stays None (it follows broker_url): restoring the value it read would
    # pin writes to this broker and leave later tests' workers unreachable.
    before = app.conf.broker_url
    app.conf.broker_url, app.conf.broker_write_url = "redis://127.0.0.1:1/0", None
    forget_pools()
    yield
    app.conf.broker_url, app.conf.broker_write_url = before, None
    forget_pools()
