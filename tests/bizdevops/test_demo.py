from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from typing import Any

import pytest
from django.utils import timezone

from bizdevops.demo import warehouse as demo
from jobs import services
from jobs.sources import run_sql

pytestmark = pytest.mark.django_db

TWO_DAYS_OF_MINUTES = 2 * 24 * 60


def _count(table: str) -> int:
    with closing(sqlite3.connect(demo.path())) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


def test_warehouse_lives_where_the_settings_say(settings, tmp_path):
    assert demo.path() == tmp_path / "warehouse.sqlite3"
    assert demo.url() == f"sqlite:///{tmp_path / 'warehouse.sqlite3'}"


def test_first_tick_fills_two_days_then_one_minute_at_a_time():
    now = timezone.now()

    first = demo.tick(now)
    again = demo.tick(now)
    later = demo.tick(now + dt.timedelta(minutes=1))

    assert TWO_DAYS_OF_MINUTES <= first <= TWO_DAYS_OF_MINUTES + 1
    assert again == 0
    assert later == 1
    # Six machines a minute; the minute that fell out of the two-day window was pruned.
    assert _count("sensor_readings") == 6 * first


def test_tick_without_argument_adds_at_most_one_minute():
    first = demo.tick()
    second = demo.tick()

    assert first >= TWO_DAYS_OF_MINUTES
    assert second in (0, 1)


def test_tick_after_a_pause_fills_the_gap():
    now = timezone.now()
    demo.tick(now)

    assert demo.tick(now + dt.timedelta(minutes=30)) == 30


def test_old_rows_are_pruned():
    now = timezone.now()
    demo.tick(now)
    demo.tick(now + dt.timedelta(days=3))

    cutoff = (now + dt.timedelta(days=1)).astimezone(dt.UTC).replace(second=0, microsecond=0)
    with closing(sqlite3.connect(demo.path())) as db:
        oldest = db.execute("SELECT min(ts) FROM card_transactions").fetchone()[0]
    assert oldest >= cutoff.strftime(demo.TS_FORMAT)


@pytest.mark.parametrize(
    ("sql", "low", "high"),
    [
        (demo.FRAUD_CAUGHT_SQL, 0.0, 100.0),
        (demo.FALSE_ALARM_SQL, 0.0, 100.0),
        (demo.CHURN_SQL, 0.0, 100.0),
        (demo.DOWNTIME_SQL, 0.0, 24.0 * 6),
    ],
    ids=["fraud-caught", "false-alarms", "churn", "downtime"],
)
def test_demo_queries_give_numbers(admin_user, sql, low, high):
    demo.tick()
    source = services.data_source_save(
        user=admin_user, name="Demo warehouse", kind="database", url=demo.url()
    )

    value = run_sql(source, sql, 10)

    assert isinstance(value, float)
    assert low <= value <= high


# The seeded demo: histories in the band the live jobs then compute ------------------------


@pytest.fixture
def seeded(django_capture_on_commit_callbacks: Any) -> list[str]:
    from bizdevops.demo.seed import seed

    log: list[str] = []
    with django_capture_on_commit_callbacks():  # alert mails of the seeded values: not sent
        seed(log)
    return log


def test_each_demo_job_computes_a_value_in_the_band_of_its_history(seeded: list[str]) -> None:
    """For every demo job: its query on the demo warehouse (as a run evaluates it) gives a
    value whose status is that of the seeded history's recent values, never critical where
    the history was not; jobs of initiatives active in Ops are run through the services."""
    from jobs import services as job_services
    from jobs import sources
    from jobs.models import Job, RunState, Trigger
    from kpis import selectors
    from kpis.health import Health, kpi_health
    from kpis.models import KPI

    jobs = list(Job.objects.select_related("kpi__initiative", "data_source"))
    assert len(jobs) >= 5
    checked = 0
    for job in jobs:
        kpi = job.kpi
        recent = list(kpi.measurements.order_by("-as_of").values_list("value", flat=True)[: 7 * 24])
        if not recent:
            continue  # no history seeded
        statuses = {kpi_health(kpi, value) for value in recent}
        value = sources.evaluate(job)
        low, high = min(recent), max(recent)
        spread = high - low
        assert low - spread / 2 <= value <= high + spread / 2, (kpi.name, value, low, high)
        health = kpi_health(kpi, value)
        assert health != Health.CRITICAL or Health.CRITICAL in statuses, (kpi.name, value)
        # Mostly healthy: the history of a job's KPI is not a run of warnings.
        healthy = sum(kpi_health(kpi, v) == Health.HEALTHY for v in recent)
        assert healthy >= 0.8 * len(recent), kpi.name
        checked += 1
        if kpi.initiative.phase == "ops" and kpi.initiative.status == "active":
            run = job_services.run_request(job=job, user=job.created_by, trigger=Trigger.MANUAL)
            assert job_services.run_execute(run_id=run.pk).state == RunState.SUCCEEDED
            (tile,) = selectors.tiles(KPI.objects.filter(pk=kpi.pk))
            assert tile.health != Health.CRITICAL
            assert tile.stale is False
    assert checked >= 4


def test_every_unit_dashboard_shows_values(seeded: list[str], client: Any) -> None:
    import re

    from django.contrib.auth import get_user_model

    from initiatives.models import BusinessUnit

    client.force_login(get_user_model().objects.get(username="stakeholder"))
    units = list(BusinessUnit.objects.order_by("name"))
    assert [u.name for u in units] == ["Fraud", "Marketing", "Risk", "Shop floor"]
    for unit in units:
        content = client.get(f"/dashboards/units/{unit.pk}/").content.decode()
        healths = re.findall(
            r'<article class="tile[^"]*" data-kpi="\d+" data-health="(\w+)"', content
        )
        assert healths, unit.name
        assert any(h != "unknown" for h in healths), f"{unit.name}: no value on its dashboard"
    overview = client.get("/kpis/")
    assert overview.status_code == 200
    assert b"No value yet" in overview.content  # the KPIs of Biz initiatives say why
