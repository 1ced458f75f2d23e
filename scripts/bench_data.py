"""The data set of `make bench` (scripts/bench.py), filled by server-side SQL into a migrated
database.

The data set (full scale; SCALE=small divides it by 20 and keeps the proportions, see
benchlib.SCALES):
- 20 business units, 20 program managers, one superuser (`bench-admin`) who asks every page.
- 10,000 initiatives, id n: unit ((n-1) // 4) % 20 + 1 (so that every unit has every phase),
  accountable PM (n-1) % 20 + 1. Phase: Ops when n % 4 is 0 or 1 (5,000, all active), Dev when
  n % 4 == 2, Biz when n % 4 == 3. Of the Biz and Dev ones, n % 5 == 0 are closed (1,000:
  cancelled or retired) and n % 17 == 0 on hold: 9,000 open initiatives on the board.
- 20,000 KPIs, two per initiative: 2n-1 "Revenue" (higher is better, warning 50, critical 30),
  2n "Latency" (lower is better, warning 200, critical 300).
- 10,000 enabled jobs, one per KPI of an Ops initiative: odd KPI ids every hour (interval),
  even ones cron `*/15 * * * *`; python calculation `portfolio.initiatives_in_ops`; next_run_at
  in the coming hour (nothing is due until the Celery part makes jobs due).
- 9,999,550 measurements: 1,000,000 for KPI 1 (BDO-1 Revenue) spread evenly over the last
  365 days, and 450 hourly values for each other KPI up to now (SCALE=small: 100,000 and 400),
  in monthly partitions made for the year first when the table is partitioned.
- One more KPI, "Bench push" on BDO-1, without values: the push benchmark writes into it.
Rollups (kpis_rollup, hourly and daily) are filled in bulk SQL and checked against
`kpis.rollups.rollups_rebuild` on three KPIs; then VACUUM ANALYZE.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
from collections.abc import Iterator
from typing import Any

from benchlib import Scale, console, progress

YEAR = dt.timedelta(days=365)
OPS_JOBS_NOTE = "Ops initiatives are n % 4 in (0, 1): half of them, two KPIs and two jobs each"


def sql(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


class Data:
    """What the build made that the benchmarks need."""

    def __init__(self, scale: Scale) -> None:
        self.scale = scale
        self.end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        self.admin: Any = None
        self.big_kpi = 1
        self.push_kpi = 0
        self.unit_id = 1
        self.steps: list[tuple[str, float]] = []
        self.rollups = ""
        self.reused = ""  # the name of a kept database read back (bench.py --reuse)


def reused(scale: Scale, name: str) -> Data:
    """The `Data` of a database an earlier `bench.py --keep` built (`bench.py --reuse`): read
    back from its rows instead of building it again. Refuses a database of another scale."""
    from django.contrib.auth import get_user_model

    from kpis.models import KPI

    initiatives = sql("SELECT count(*) FROM initiatives_initiative")[0][0]
    if initiatives != scale.initiatives:
        raise SystemExit(
            f"database {name} holds {initiatives:,} initiatives, not the {scale.initiatives:,} "
            f"of scale {scale.name}: give the --scale it was built with"
        )
    data = Data(scale)
    data.admin = get_user_model().objects.get(username="bench-admin")
    data.push_kpi = KPI.objects.get(name="Bench push", initiative_id=1).pk
    # The newest value of the big KPI is at the build's `end` (see _measurements_insert).
    newest = "SELECT max(as_of) FROM kpis_measurement WHERE kpi_id = %s"
    data.end = sql(newest, [data.big_kpi])[0][0]
    data.rollups = "none (this tree has no kpis_rollup table)"
    if sql("SELECT to_regclass('kpis_rollup') IS NOT NULL")[0][0]:
        count = sql("SELECT count(*) FROM kpis_rollup")[0][0]
        data.rollups = f"{count:,} rows (built earlier)"
    data.reused = name
    return data


def build(scale: Scale) -> Data:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from bizdevops.roles import Role

    if scale.kpis != 2 * scale.initiatives or scale.jobs != scale.kpis // 2:
        raise SystemExit("the layout needs kpis = 2 x initiatives and jobs = kpis / 2")
    data = Data(scale)
    with progress() as bar:

        def step(label: str, total: int, chunks: Iterator[int]) -> None:
            task = bar.add_task(label, total=total)
            started = time.perf_counter()
            for done in chunks:
                bar.advance(task, done)
            data.steps.append((label, time.perf_counter() - started))

        def migrate() -> Iterator[int]:
            call_command("migrate", verbosity=0)
            yield 1

        step("migrate", 1, migrate())

        def people() -> Iterator[int]:
            User = get_user_model()
            data.admin = User.objects.create_superuser("bench-admin", password=None)
            managers = Group.objects.get(name=Role.PROGRAM_MANAGER.value)
            for n in range(1, scale.units + 1):
                pm = User.objects.create_user(f"pm{n:02}", first_name="PM", last_name=f"{n}")
                pm.groups.add(managers)
            sql(
                "INSERT INTO initiatives_businessunit (id, name, description, created_at) "
                "SELECT g, 'Unit ' || lpad(g::text, 2, '0'), '', now() "
                "FROM generate_series(1, %s) g",
                [scale.units],
            )
            yield 1

        step("users and business units", 1, people())
        step("initiatives", scale.initiatives, _initiatives(data))
        step("KPIs", scale.kpis, _kpis(data))
        step("jobs", scale.jobs, _jobs(data))
        step("measurements", measurement_count(scale), _measurements(data))
        step("rollups", 1, _rollups(data))

        def analyse() -> Iterator[int]:
            from django.db import connection

            # VACUUM (not in a transaction) also sets the visibility map, as autovacuum would
            # soon after a load: index-only scans for ours and the baselines alike.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            yield 1

        step("VACUUM ANALYZE", 1, analyse())
    return data


def _initiatives(data: Data) -> Iterator[int]:
    scale, chunk = data.scale, 2_000
    pms = sql("SELECT min(id) FROM auth_user WHERE username LIKE 'pm%%'")[0][0]
    for first in range(1, scale.initiatives + 1, chunk):
        last = min(first + chunk - 1, scale.initiatives)
        sql(
            """
            INSERT INTO initiatives_initiative (id, title, business_unit_id, accountable_id,
                business_problem, business_requirements, use_case, algorithm_translation,
                data_feasibility, phase, status, dev_timebox_weeks, dev_started_at,
                phase_entered_at, created_by_id, created_at, updated_at)
            SELECT g, 'Initiative ' || g || ' forecasting demand',
                ((g - 1) / 4) %% %(units)s + 1,
                %(pms)s + (g - 1) %% %(units)s,
                'Business problem of initiative ' || g, '', '', '', '', p.phase,
                CASE WHEN p.phase <> 'ops' AND g %% 5 = 0
                     THEN (CASE WHEN g %% 2 = 0 THEN 'retired' ELSE 'cancelled' END)
                     WHEN p.phase <> 'ops' AND g %% 17 = 0 THEN 'on_hold' ELSE 'active' END,
                6, CASE WHEN p.phase = 'dev' THEN now() - (g %% 60) * interval '1 day' END,
                now() - (g %% 90) * interval '1 day', %(admin)s, now(), now()
            FROM generate_series(%(first)s, %(last)s) g,
                LATERAL (SELECT CASE g %% 4 WHEN 2 THEN 'dev' WHEN 3 THEN 'biz' ELSE 'ops' END
                         AS phase) p
            """,
            {
                "units": scale.units,
                "pms": pms,
                "admin": data.admin.pk,
                "first": first,
                "last": last,
            },
        )
        yield last - first + 1
    sql("SELECT setval(pg_get_serial_sequence('initiatives_initiative', 'id'), %s)", [last])
    sql("SELECT setval(pg_get_serial_sequence('initiatives_businessunit', 'id'), %s)", [9999])


def _kpis(data: Data) -> Iterator[int]:
    scale, chunk = data.scale, 5_000
    for first in range(1, scale.kpis + 1, chunk):
        last = min(first + chunk - 1, scale.kpis)
        sql(
            """
            INSERT INTO kpis_kpi (id, initiative_id, name, unit, description, direction,
                target, warning_threshold, critical_threshold, last_health, created_by_id,
                created_at)
            SELECT k, (k + 1) / 2,
                CASE WHEN k %% 2 = 1 THEN 'Revenue' ELSE 'Latency' END,
                CASE WHEN k %% 2 = 1 THEN 'kEUR' ELSE 'ms' END, '',
                CASE WHEN k %% 2 = 1 THEN 'higher' ELSE 'lower' END,
                CASE WHEN k %% 2 = 1 THEN 80 ELSE 100 END,
                CASE WHEN k %% 2 = 1 THEN 50 ELSE 200 END,
                CASE WHEN k %% 2 = 1 THEN 30 ELSE 300 END, '', %(admin)s, now()
            FROM generate_series(%(first)s, %(last)s) k
            """,
            {"admin": data.admin.pk, "first": first, "last": last},
        )
        yield last - first + 1
    sql("SELECT setval(pg_get_serial_sequence('kpis_kpi', 'id'), %s)", [scale.kpis])
    from kpis.models import KPI

    push = KPI.objects.create(
        initiative_id=1, name="Bench push", target=1, created_by=data.admin
    )  # BDO-1 is in Ops and active: pushes are allowed
    data.push_kpi = push.pk


def _jobs(data: Data) -> Iterator[int]:
    sql(
        """
        INSERT INTO jobs_job (kpi_id, schedule_kind, cron, interval_seconds, source_kind, sql,
            http_path, json_path, calculation, timeout_seconds, max_retries, enabled,
            next_run_at, created_by_id, created_at, updated_at)
        SELECT k.id, CASE WHEN k.id %% 2 = 1 THEN 'interval' ELSE 'cron' END,
            CASE WHEN k.id %% 2 = 1 THEN '' ELSE '*/15 * * * *' END,
            CASE WHEN k.id %% 2 = 1 THEN 3600 END, 'python', '', '', '',
            'portfolio.initiatives_in_ops', 30, 2, true,
            %(end)s + (k.id %% 3600) * interval '1 second', %(admin)s, now(), now()
        FROM kpis_kpi k JOIN initiatives_initiative i ON i.id = k.initiative_id
        WHERE i.phase = 'ops' AND k.id <= %(kpis)s
        ORDER BY k.id
        """,
        {"end": data.end, "admin": data.admin.pk, "kpis": data.scale.kpis},
    )
    count = sql("SELECT count(*) FROM jobs_job")[0][0]
    if count != data.scale.jobs:
        raise SystemExit(f"{count} jobs instead of {data.scale.jobs}: {OPS_JOBS_NOTE}")
    yield count


def _month_partitions(data: Data) -> None:
    """With measurements partitioned by month (kpis migration 0008), the partitions of the
    months the data covers, named as the migration names them: a fresh database has only this
    month's and the coming ones', and a year of values in the DEFAULT partition is not what a
    long-running installation has."""
    if sql("SELECT relkind FROM pg_class WHERE oid = 'kpis_measurement'::regclass")[0][0] != "p":
        return
    month = (data.end - YEAR - dt.timedelta(days=31)).replace(day=1, hour=0, minute=0)
    while month <= data.end:
        following = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
        name = f"kpis_measurement_p{month:%Y_%m}"
        if not sql("SELECT to_regclass(%s) IS NOT NULL", [name])[0][0]:
            sql(
                f"CREATE TABLE {name} PARTITION OF kpis_measurement "  # noqa: S608 -- our names
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
            )
        month = following


def _measurements(data: Data) -> Iterator[int]:
    from django.db import DatabaseError, transaction

    _month_partitions(data)
    # The values' KPIs exist by construction: as a superuser, skip the deferred foreign-key
    # check of every row at commit (about 40 % of the load). Others simply pay for it.
    try:
        with transaction.atomic():
            sql("SET session_replication_role = replica")
    except DatabaseError:
        pass
    try:
        yield from _measurements_insert(data)
    finally:
        with contextlib.suppress(DatabaseError):
            sql("SET session_replication_role = DEFAULT")


def per_kpi(scale: Scale) -> int:
    return (scale.measurements - scale.big_kpi_measurements) // (scale.kpis - 1)


def measurement_count(scale: Scale) -> int:
    return scale.big_kpi_measurements + per_kpi(scale) * (scale.kpis - 1)


def _measurements_insert(data: Data) -> Iterator[int]:
    scale = data.scale
    big, chunk = scale.big_kpi_measurements, 100_000
    step_ms = YEAR.total_seconds() * 1000 / big
    for first in range(0, big, chunk):
        last = min(first + chunk, big) - 1
        sql(
            """
            INSERT INTO kpis_measurement (kpi_id, as_of, value, origin, recorded_at)
            SELECT %(kpi)s, %(end)s - g * %(step)s * interval '1 millisecond',
                60 + 30 * sin(g / 2000.0) + (g %% 7), 'run', now()
            FROM generate_series(%(last)s, %(first)s, -1) g
            """,
            {"kpi": data.big_kpi, "end": data.end, "step": step_ms, "first": first, "last": last},
        )
        yield last - first + 1
    per = per_kpi(scale)
    kpis_per_chunk = max(1, 200_000 // per)
    for first in range(2, scale.kpis + 1, kpis_per_chunk):
        last = min(first + kpis_per_chunk - 1, scale.kpis)
        sql(
            """
            INSERT INTO kpis_measurement (kpi_id, as_of, value, origin, recorded_at)
            SELECT k, %(end)s - (k %% 60) * interval '1 minute' - g * interval '1 hour',
                CASE WHEN k %% 2 = 1 THEN 60 + 30 * sin((g + k) / 24.0)
                     ELSE 150 + 100 * sin((g + k) / 24.0) END, 'run', now()
            FROM generate_series(%(first)s, %(last)s) k,
                LATERAL generate_series(%(per)s - 1, 0, -1) g
            """,
            {"end": data.end, "first": first, "last": last, "per": per},
        )
        yield (last - first + 1) * per


# The rollups of kpis/rollups.py in bulk: hours from the raw finite values, days from the
# hours, as `rollups_refresh` computes them per KPI (`rollups_rebuild`, one transaction per
# KPI, takes tens of milliseconds per KPI: minutes for 20,000 KPIs). `_rollups` checks a few
# KPIs against `rollups_rebuild`.
ROLLUP_HOURS_SQL = """
INSERT INTO kpis_rollup (kpi_id, resolution, bucket, count, sum_scaled, min, max,
    first_as_of, first_value, last_as_of, last_value)
SELECT kpi_id, 'hour', date_trunc('hour', as_of, 'UTC'), count(*), sum(value / %(scale)s),
    min(value), max(value), min(as_of), (array_agg(value ORDER BY as_of))[1],
    max(as_of), (array_agg(value ORDER BY as_of DESC))[1]
FROM kpis_measurement
WHERE kpi_id BETWEEN %(first)s AND %(last)s AND value >= -%(largest)s AND value <= %(largest)s
GROUP BY kpi_id, date_trunc('hour', as_of, 'UTC')
"""
ROLLUP_DAYS_SQL = """
INSERT INTO kpis_rollup (kpi_id, resolution, bucket, count, sum_scaled, min, max,
    first_as_of, first_value, last_as_of, last_value)
SELECT kpi_id, 'day', date_trunc('day', bucket, 'UTC'), sum(count), sum(sum_scaled),
    min(min), max(max), min(first_as_of), (array_agg(first_value ORDER BY first_as_of))[1],
    max(last_as_of), (array_agg(last_value ORDER BY last_as_of DESC))[1]
FROM kpis_rollup
WHERE resolution = 'hour' AND kpi_id BETWEEN %(first)s AND %(last)s
GROUP BY kpi_id, date_trunc('day', bucket, 'UTC')
"""
ROLLUP_COLUMNS = (
    "resolution, bucket, count, min, max, first_as_of, first_value, last_as_of, last_value"
)


def _rollups(data: Data) -> Iterator[int]:
    if not sql("SELECT to_regclass('kpis_rollup') IS NOT NULL")[0][0]:
        data.rollups = "none (this tree has no kpis_rollup table)"
        yield 1
        return
    sql("ANALYZE kpis_measurement")  # without statistics `rollups_rebuild` takes minutes
    started = time.perf_counter()
    last_kpi = data.scale.kpis
    step = max(1, last_kpi // 20)
    for first in range(1, last_kpi + 1, step):
        bounds = {"first": first, "last": min(first + step - 1, last_kpi)}
        sql(ROLLUP_HOURS_SQL, bounds | {"scale": 2.0**64, "largest": sys.float_info.max})
        sql(ROLLUP_DAYS_SQL, bounds)
    count = sql("SELECT count(*) FROM kpis_rollup")[0][0]
    data.rollups = f"{count:,} rows filled in bulk SQL in {time.perf_counter() - started:.1f} s"
    console.print(f"rollups: {data.rollups}")
    try:
        from kpis.rollups import rollups_rebuild
    except ImportError:
        yield 1
        return
    sample = [data.big_kpi, 2, last_kpi]
    query = (
        f"SELECT kpi_id, {ROLLUP_COLUMNS}, sum_scaled FROM kpis_rollup "  # noqa: S608
        "WHERE kpi_id = ANY(%s) ORDER BY kpi_id, resolution, bucket"
    )
    ours = sql(query, [sample])
    started = time.perf_counter()
    rollups_rebuild(kpi_ids=sample)
    theirs = sql(query, [sample])
    seconds = time.perf_counter() - started
    same = len(ours) == len(theirs) and all(
        a[:-1] == b[:-1] and abs(a[-1] - b[-1]) <= 1e-9 * max(abs(a[-1]), abs(b[-1]))
        for a, b in zip(ours, theirs, strict=True)
    )
    if not same:
        raise SystemExit("the bulk rollups differ from kpis.rollups.rollups_rebuild's")
    data.rollups += (
        f"; the same as `rollups_rebuild` for KPIs {sample} (which took {seconds:.1f} s for "
        f"those {len(ours):,} rows)"
    )
    yield 1
