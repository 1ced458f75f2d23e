"""Measurements partitioned by month on PostgreSQL (migration 0008, kpis/partitions.py) and
the retention of raw values (MEASUREMENT_RAW_RETENTION_DAYS) everywhere: whole months dropped,
the rollups kept (made whole first) and the long-range charts still answering."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import uuid
from types import SimpleNamespace

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bizdevops.errors import DomainError
from bizdevops.history import runtime_role_grant
from jobs.services import run_execute
from kpis import partitions, selectors, services, tasks
from kpis.models import Measurement, Origin, Resolution, Rollup
from kpis.partitions import month_after, month_floor, partition_name
from tests.jobs.helpers import scheduled_run

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = timezone.now()
TODAY = NOW.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
TABLE = "kpis_measurement"
MIGRATION = importlib.import_module("kpis.migrations.0008_partitioned_measurements")


def _where(kpi) -> dict[dt.datetime, str]:
    """as_of → the partition holding the row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT as_of, tableoid::regclass::text FROM kpis_measurement WHERE kpi_id = %s",
            [kpi.pk],
        )
        return dict(cursor.fetchall())


def _partition_names() -> list[str]:
    return [p.name for p in partitions.partitions_list()]


def _daily(kpi, days: int, *, user, per_day: int = 1) -> list[dt.datetime]:
    """`per_day` values from noon UTC on each of the last `days` days, pushed as one batch."""
    moments = [
        TODAY - dt.timedelta(days=n) + dt.timedelta(hours=12, minutes=10 * k)
        for n in range(1, days + 1)
        for k in range(per_day)
    ]
    items = [(m, float(i)) for i, m in enumerate(moments)]
    services.measurements_push(kpi=kpi, user=user, items=items)
    return moments


def _year_chart(kpi) -> list[tuple[int, float, float, float, int]]:
    # Whole days at both ends: no raw ragged end, the chart is its rollups alone.
    return selectors.series(kpi, TODAY - dt.timedelta(days=365), TODAY).points


# After migrate (PostgreSQL) -------------------------------------------------------------------


@pytest.mark.postgres
def test_the_table_is_partitioned_by_month_with_a_default_partition_and_months_ahead(settings):
    assert partitions.is_partitioned()
    listed = partitions.partitions_list()
    assert listed[-1].is_default and listed[-1].name == f"{TABLE}_default"
    month = month_floor(NOW)
    for _ in range(settings.MEASUREMENT_PARTITIONS_AHEAD + 1):
        assert partition_name(month) in _partition_names()
        month = month_after(month)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY contype",
            [TABLE],
        )
        assert [d for (d,) in cursor.fetchall()] == [
            "PRIMARY KEY (id, as_of)",
            "UNIQUE (kpi_id, as_of)",
        ]
    assert partitions.partitions_missing() == []


def test_the_model_state_needs_no_new_migration():
    call_command("makemigrations", "kpis", "--check", "--dry-run", verbosity=0)


@pytest.mark.postgres
def test_rows_land_in_the_partition_of_their_month_and_the_rest_in_the_default(ops_kpi, engineer):
    this_month = NOW - dt.timedelta(minutes=1)
    long_ago = dt.datetime(2001, 5, 3, 4, 5, tzinfo=UTC)
    services.measurements_push(
        kpi=ops_kpi, user=engineer, items=[(this_month, 1.0), (long_ago, 2.0)]
    )

    assert _where(ops_kpi) == {
        this_month: partition_name(month_floor(this_month)),
        long_ago: f"{TABLE}_default",
    }


@pytest.mark.postgres
def test_a_push_and_a_run_upsert_on_the_partitioned_table(ops_kpi, ops_job, engineer):
    moment = NOW - dt.timedelta(hours=1)
    assert services.measurements_push(kpi=ops_kpi, user=engineer, items=[(moment, 1.0)]) == (1, 0)
    assert services.measurements_push(kpi=ops_kpi, user=engineer, items=[(moment, 2.0)]) == (0, 1)
    run = scheduled_run(ops_job)
    run_execute(run_id=run.pk)
    run_execute(run_id=run.pk)  # redelivered: the same row
    services.measurement_record(
        kpi=ops_kpi, as_of=run.scheduled_for, value=5.0, origin=Origin.RUN, run_id=run.pk
    )

    rows = list(Measurement.objects.filter(kpi=ops_kpi).values_list("as_of", "value", "run_id"))
    assert sorted(rows) == [(moment, 2.0, None), (run.scheduled_for, 5.0, run.pk)]


# Creating ahead ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_months_ahead_are_created_when_time_comes_and_only_once(settings):
    later = month_after(month_after(month_floor(NOW))) + dt.timedelta(days=400)
    wanted = partitions.partitions_missing(now=later)
    month, months = month_floor(later), []
    for _ in range(settings.MEASUREMENT_PARTITIONS_AHEAD + 1):
        months.append(month)
        month = month_after(month)
    assert wanted == months  # this month and the ones ahead; none before

    report = partitions.partitions_maintain(now=later)

    assert report.created == [partition_name(month) for month in wanted]
    assert report.problems == []
    assert partitions.partitions_missing(now=later) == []
    assert partitions.partitions_maintain(now=later).created == []


@pytest.mark.postgres
def test_rows_in_the_default_partition_move_into_their_month_when_it_is_created(ops_kpi, engineer):
    first = dt.datetime(2001, 5, 3, tzinfo=UTC)
    last = dt.datetime(2001, 5, 31, 23, 59, 59, 999999, tzinfo=UTC)
    june = dt.datetime(2001, 6, 1, tzinfo=UTC)
    services.measurements_push(
        kpi=ops_kpi, user=engineer, items=[(first, 1.0), (last, 2.0), (june, 3.0)]
    )
    assert set(_where(ops_kpi).values()) == {f"{TABLE}_default"}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", [f"{TABLE}_default"]
        )
        (indexes,) = cursor.fetchone()

    report = partitions.partitions_create()

    assert report.created == [f"{TABLE}_p2001_05", f"{TABLE}_p2001_06"]
    assert report.moved == 3
    assert _where(ops_kpi) == {
        first: f"{TABLE}_p2001_05",
        last: f"{TABLE}_p2001_05",
        june: f"{TABLE}_p2001_06",
    }
    default = partitions.partitions_list()[-1]
    assert default.is_default and default.name == f"{TABLE}_default"  # attached again
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", [f"{TABLE}_default"]
        )
        assert cursor.fetchone() == (indexes,)  # its indexes attached again, none built twice
    # The unique key still holds across the move.
    assert services.measurements_push(kpi=ops_kpi, user=engineer, items=[(first, 9.0)]) == (0, 1)


@pytest.mark.postgres
def test_the_conversion_keeps_every_row_and_goes_both_ways(ops_kpi, engineer):
    moments = [dt.datetime(2020, 3, 5, tzinfo=UTC), NOW - dt.timedelta(minutes=5)]
    services.measurements_push(kpi=ops_kpi, user=engineer, items=[(m, 1.0) for m in moments])
    before = sorted(Measurement.objects.values_list("id", "kpi_id", "as_of", "value"))
    editor = SimpleNamespace(connection=connection)

    MIGRATION.unpartition(None, editor)
    assert not partitions.is_partitioned()
    assert sorted(Measurement.objects.values_list("id", "kpi_id", "as_of", "value")) == before
    MIGRATION.partition(None, editor)

    assert partitions.is_partitioned()
    assert sorted(Measurement.objects.values_list("id", "kpi_id", "as_of", "value")) == before
    assert f"{TABLE}_p2020_03" in _partition_names()  # a month holding values got its own
    assert _where(ops_kpi)[moments[0]] == f"{TABLE}_p2020_03"
    newer = services.measurement_record(kpi=ops_kpi, as_of=NOW, value=2.0, origin=Origin.API)
    assert newer.pk > max(row[0] for row in before)  # the sequence went on


# Retention --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_retention_drops_whole_months_keeps_the_rollups_and_the_year_chart(
    ops_kpi, engineer, settings
):
    moments = _daily(ops_kpi, 400, user=engineer, per_day=3)
    partitions.partitions_maintain()  # the months of those values get their partitions
    chart = _year_chart(ops_kpi)
    rollups = sorted(Rollup.objects.values_list("resolution", "bucket", "count"))
    settings.MEASUREMENT_RAW_RETENTION_DAYS = 60
    cutoff = partitions.retention_cutoff()
    assert cutoff == TODAY - dt.timedelta(days=60)

    report = partitions.partitions_maintain()

    old_months = {month_floor(m) for m in moments if month_after(month_floor(m)) <= cutoff}
    assert sorted(report.dropped) == sorted(partition_name(m) for m in old_months)
    assert report.deleted == sum(
        1 for m in moments if m < cutoff and month_floor(m) not in old_months
    )
    assert report.problems == [] and report.finished
    assert report.refreshed == 0  # every value was already rolled up
    assert sorted(Measurement.objects.values_list("as_of", flat=True)) == sorted(
        m for m in moments if m >= cutoff
    )
    assert sorted(Rollup.objects.values_list("resolution", "bucket", "count")) == rollups
    assert _year_chart(ops_kpi) == chart
    assert sum(point[4] for point in chart) == 365 * 3
    assert partitions.partitions_maintain().dropped == []  # nothing left to do


def test_rollups_missing_for_old_values_are_made_before_those_values_go(
    ops_kpi, engineer, settings
):
    moments = _daily(ops_kpi, 90, user=engineer, per_day=3)
    partitions.partitions_maintain()
    chart = _year_chart(ops_kpi)
    Rollup.objects.filter(bucket__lt=TODAY - dt.timedelta(days=70)).delete()  # never built
    wrong = Rollup.objects.get(resolution=Resolution.DAY, bucket=TODAY - dt.timedelta(days=50))
    Rollup.objects.filter(pk=wrong.pk).update(count=2)  # one value not counted
    settings.MEASUREMENT_RAW_RETENTION_DAYS = 45
    unrolled = partitions._unrolled(None, partitions.retention_cutoff())
    assert unrolled == {
        ops_kpi.pk: sorted([TODAY - dt.timedelta(days=n) for n in range(71, 91)] + [wrong.bucket])
    }

    report = partitions.partitions_maintain()

    assert report.refreshed >= 1  # once per month partition or span holding such days
    assert not Measurement.objects.filter(as_of__lt=partitions.retention_cutoff()).exists()
    days = Rollup.objects.filter(kpi=ops_kpi, resolution=Resolution.DAY)
    assert days.count() == 90 and sum(days.values_list("count", flat=True)) == len(moments)
    assert _year_chart(ops_kpi) == chart


def test_retention_deletes_in_batches_where_it_cannot_drop_months(
    ops_kpi, engineer, settings, monkeypatch
):
    """SQLite (one table), and on PostgreSQL the month straddling the cutoff."""
    moments = _daily(ops_kpi, 40, user=engineer)
    partitions.partitions_create()  # PostgreSQL: the months of those values get partitions
    settings.MEASUREMENT_RAW_RETENTION_DAYS = 30
    monkeypatch.setattr(partitions, "DELETE_BATCH", 3)
    cutoff = partitions.retention_cutoff()
    dropped_months = {
        month_floor(m)
        for m in moments
        if connection.vendor == "postgresql" and month_after(month_floor(m)) <= cutoff
    }
    straddling = sum(1 for m in moments if m < cutoff and month_floor(m) not in dropped_months)

    with CaptureQueriesContext(connection) as queries:
        report = partitions.measurements_retire()

    assert report.dropped == [partition_name(m) for m in sorted(dropped_months)]
    assert report.deleted == straddling
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == straddling // 3 + 1  # full batches of 3, then the rest
    assert not Measurement.objects.filter(as_of__lt=cutoff).exists()
    assert Measurement.objects.count() == 30


def test_the_time_budget_stops_retention_and_the_next_run_goes_on(
    ops_kpi, engineer, settings, monkeypatch
):
    _daily(ops_kpi, 40, user=engineer)
    partitions.partitions_create()
    settings.MEASUREMENT_RAW_RETENTION_DAYS = 30
    monkeypatch.setattr(partitions, "DELETE_BATCH", 3)

    stopped = partitions.measurements_retire(budget_seconds=-1)

    assert not stopped.finished
    assert Measurement.objects.count() == 40
    assert partitions.measurements_retire().finished
    assert Measurement.objects.count() == 30


def test_values_older_than_the_cutoff_are_refused_and_the_cutoff_is_a_whole_day(ops_kpi, settings):
    settings.MEASUREMENT_RAW_RETENTION_DAYS = 30
    cutoff = partitions.retention_cutoff()
    assert cutoff == TODAY - dt.timedelta(days=30)

    with pytest.raises(DomainError) as refused:
        services.measurement_record(
            kpi=ops_kpi, as_of=cutoff - dt.timedelta(microseconds=1), value=1.0, origin=Origin.API
        )

    assert refused.value.field == "as_of"
    assert f"{cutoff:%Y-%m-%d} or later" in refused.value.message
    assert services.measurement_record(kpi=ops_kpi, as_of=cutoff, value=1.0, origin=Origin.API)
    settings.MEASUREMENT_RAW_RETENTION_DAYS = None
    assert partitions.retention_cutoff() is None


def test_without_a_retention_setting_nothing_is_retired(ops_kpi, engineer):
    _daily(ops_kpi, 40, user=engineer)

    report = partitions.partitions_maintain()

    assert report.deleted == 0 and report.dropped == []
    assert Measurement.objects.count() == 40


# A role that may not create or drop tables ---------------------------------------------------


@pytest.fixture
def runtime_role(db):
    """A role that owns nothing with the runtime role's grants (as docker-compose's web,
    worker and beat connect as), made in this test's transaction (gone with its rollback)."""
    role = f"bdo_test_runtime_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" NOLOGIN')
    runtime_role_grant(connection=connection, role=role)
    return role


@pytest.fixture
def as_runtime_role(runtime_role):
    """This test's connection runs as `runtime_role`."""
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{runtime_role}"')
    try:
        yield runtime_role
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


@pytest.mark.postgres
def test_a_new_partition_gets_the_runtime_roles_grants(runtime_role, settings):
    settings.DATABASE_RUNTIME_ROLE = runtime_role
    later = month_floor(NOW) + dt.timedelta(days=31 * (settings.MEASUREMENT_PARTITIONS_AHEAD + 2))

    created = partitions.partitions_create(now=later).created

    assert created
    kinds = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    with connection.cursor() as cursor:
        for name in created:
            granted = set()
            for kind in kinds:
                cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [runtime_role, name, kind])
                if cursor.fetchone()[0]:
                    granted.add(kind)
            assert granted == {"SELECT", "INSERT", "UPDATE", "DELETE"}, name


@pytest.mark.postgres
def test_a_role_that_may_not_create_partitions_says_so_and_does_not_crash(
    ops_kpi, engineer, as_runtime_role, settings
):
    later = month_floor(NOW) + dt.timedelta(days=31 * (settings.MEASUREMENT_PARTITIONS_AHEAD + 2))
    missing = partitions.partitions_missing(now=later)
    assert missing

    report = partitions.partitions_maintain(now=later)

    assert report.created == []
    (problem,) = report.problems
    assert f"The database role {as_runtime_role} may not create them" in problem
    assert "manage.py measurement_partitions" in problem
    assert partitions.partitions_missing(now=later) == missing
    # The app goes on writing as this role.
    assert services.measurements_push(kpi=ops_kpi, user=engineer, items=[(NOW, 1.0)]) == (1, 0)


@pytest.mark.postgres
def test_the_task_logs_what_the_role_could_not_do(as_runtime_role, caplog, monkeypatch):
    monkeypatch.setattr(
        partitions, "partitions_missing", lambda now=None: [dt.datetime(2001, 1, 1, tzinfo=UTC)]
    )

    with caplog.at_level(logging.WARNING, logger="kpis.tasks"):
        tasks.maintain_partitions()

    (record,) = [r for r in caplog.records if r.name == "kpis.tasks"]
    assert record.levelno == logging.WARNING
    assert "No partition for 2001-01" in record.getMessage()
    assert as_runtime_role in record.getMessage()


@pytest.mark.postgres
def test_a_role_that_may_not_drop_months_deletes_their_rows_instead(
    ops_kpi, engineer, settings, as_runtime_role
):
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    _daily(ops_kpi, 120, user=engineer)
    partitions.partitions_maintain()  # as the owner: the months get partitions
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{as_runtime_role}"')
    settings.MEASUREMENT_RAW_RETENTION_DAYS = 60
    names = _partition_names()

    report = partitions.partitions_maintain()

    assert report.dropped == []
    assert "may not drop them" in report.problems[0]
    assert report.deleted == 60
    assert not Measurement.objects.filter(as_of__lt=partitions.retention_cutoff()).exists()
    assert _partition_names() == names  # still there, empty, for the owner to drop


@pytest.mark.postgres
def test_the_admin_list_of_measurements_says_what_is_missing(admin_user, client, monkeypatch):
    client.force_login(admin_user)
    monkeypatch.setattr(partitions, "may_manage", lambda: (False, "bizdevops_app"))
    monkeypatch.setattr(
        partitions, "partitions_missing", lambda now=None: [dt.datetime(2031, 1, 1, tzinfo=UTC)]
    )

    response = client.get("/admin/kpis/measurement/")

    assert response.status_code == 200
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert "No measurement partition for 2031-01" in message
    assert "bizdevops_app may not create them" in message


# The command ---------------------------------------------------------------------------------


def test_the_command_maintains_and_lists(ops_kpi, engineer, settings, capsys):
    _daily(ops_kpi, 40, user=engineer)
    settings.MEASUREMENT_RAW_RETENTION_DAYS = 30

    call_command("measurement_partitions")
    call_command("measurement_partitions", "--list")

    out = capsys.readouterr().out
    assert "deleted" in out or "dropped" in out
    assert "Raw values older than" in out
    assert Measurement.objects.count() == 30


def test_the_api_refuses_values_older_than_the_cutoff(ops_kpi, engineer, settings):
    from rest_framework.test import APIClient

    from tests.api.helpers import API, authenticate

    settings.MEASUREMENT_RAW_RETENTION_DAYS = 30
    old = (TODAY - dt.timedelta(days=31)).isoformat()
    client = authenticate(APIClient(), engineer)

    response = client.post(
        f"{API}/kpis/{ops_kpi.pk}/measurements/", {"as_of": old, "value": 1.0}, format="json"
    )

    assert response.status_code == 400
    assert "or later: raw values are kept 30 days" in str(response.json()), response.json()
    assert not Measurement.objects.exists()


def test_thirty_days_of_raw_values_are_what_the_raw_charts_need():
    """Why MEASUREMENT_RAW_RETENTION_DAYS is at least 30 (bizdevops/settings.py)."""
    assert selectors.chart_buckets(selectors.RANGES["30d"].total_seconds())[1] is None
    assert selectors.chart_buckets(selectors.RANGES["90d"].total_seconds())[1] is not None
    assert max(selectors.RANGES.values()) == dt.timedelta(days=365)


@pytest.mark.postgres
def test_the_command_fails_saying_why_when_its_role_may_not_create_partitions(
    as_runtime_role, monkeypatch
):
    from django.core.management.base import CommandError

    monkeypatch.setattr(
        partitions, "partitions_missing", lambda now=None: [dt.datetime(2001, 1, 1, tzinfo=UTC)]
    )

    with pytest.raises(CommandError) as failed:
        call_command("measurement_partitions")

    assert "No partition for 2001-01" in str(failed.value)
