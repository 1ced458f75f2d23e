"""`measurements_push` writes a batch in a fixed number of statements whatever its size (one
upsert and one rollup refresh on PostgreSQL), under the KPI's row lock, telling created from
updated values."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from kpis import services
from kpis.models import Measurement, Origin, Resolution, Rollup
from tests.kpis.test_rollups import START, assert_rollups_right

pytestmark = pytest.mark.django_db


def items(n: int, offset: int = 0, value: float = 1.0) -> list[tuple[dt.datetime, float]]:
    return [(START + dt.timedelta(seconds=30 * (i + offset)), value + i) for i in range(n)]


def test_a_full_batch_creates_then_updates(ops_kpi, engineer):
    assert services.measurements_push(kpi=ops_kpi, user=engineer, items=items(10_000)) == (
        10_000,
        0,
    )
    # Half the moments again (updated), half new.
    again = items(10_000, offset=5_000, value=-1.0)
    assert services.measurements_push(kpi=ops_kpi, user=engineer, items=again) == (5_000, 5_000)
    assert Measurement.objects.filter(kpi=ops_kpi).count() == 15_000
    row = Measurement.objects.get(kpi=ops_kpi, as_of=again[0][0])
    assert (row.value, row.origin, row.run_id) == (-1.0, Origin.API, None)
    assert_rollups_right(ops_kpi)


def test_the_last_value_given_for_a_moment_wins(ops_kpi, engineer):
    moment = START
    pushed = [(moment, 1.0), (moment + dt.timedelta(minutes=1), 2.0), (moment, 3.0)]
    assert services.measurements_push(kpi=ops_kpi, user=engineer, items=pushed) == (2, 0)
    assert Measurement.objects.get(kpi=ops_kpi, as_of=moment).value == 3.0
    assert_rollups_right(ops_kpi)


@pytest.mark.postgres
def test_the_statements_do_not_grow_with_the_batch(ops_kpi, engineer):
    services.measurements_push(kpi=ops_kpi, user=engineer, items=items(1))  # first status
    counts = []
    for n, offset in ((10, 100), (10_000, 20_000)):
        with CaptureQueriesContext(connection) as queries:
            services.measurements_push(kpi=ops_kpi, user=engineer, items=items(n, offset))
        counts.append(len(queries))
        sql = [q["sql"] for q in queries]
    assert counts[0] == counts[1]
    # The KPI's row is locked before the values are written (kpis.rollups' contract).
    lock = next(i for i, s in enumerate(sql) if 'FROM "kpis_kpi"' in s and "FOR UPDATE" in s)
    write = next(i for i, s in enumerate(sql) if "INSERT INTO kpis_measurement" in s)
    refresh = next(i for i, s in enumerate(sql) if "INSERT INTO kpis_rollup" in s)
    assert lock < write < refresh
    assert_rollups_right(ops_kpi)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_writers_of_one_kpi_roll_up_each_others_values(ops_kpi, engineer):
    """Writer A (as a run does: lock the KPI, write, refresh) is still open when writer B
    pushes into the same hour: B waits for A's lock, so its refresh sees A's value. (Without
    the lock B's refresh would miss A's uncommitted value and, committing last, win.)"""
    from kpis.rollups import rollups_refresh

    moment = START
    errors: list[BaseException] = []

    def writer_b() -> None:
        try:
            services.measurements_push(
                kpi=ops_kpi, user=engineer, items=[(moment + dt.timedelta(minutes=1), 1.0)]
            )
        except BaseException as error:  # noqa: BLE001  (reported to the test's thread)
            errors.append(error)
        finally:
            connection.close()

    with transaction.atomic():
        services.kpi_lock(kpi_id=ops_kpi.pk)
        Measurement.objects.create(kpi=ops_kpi, as_of=moment, value=100.0, origin=Origin.RUN)
        rollups_refresh(kpi_id=ops_kpi.pk, start=moment, end=moment)
        b = threading.Thread(target=writer_b)
        b.start()
        b.join(timeout=1.0)
        assert b.is_alive()  # waiting for A's lock
    b.join(timeout=30)
    assert not b.is_alive() and not errors
    assert_rollups_right(ops_kpi)
    assert Rollup.objects.get(kpi=ops_kpi, resolution=Resolution.HOUR).count == 2
