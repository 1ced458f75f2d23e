from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing

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
