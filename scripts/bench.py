"""Benchmarks: `make bench` (SQLite in a temporary folder) or with DATABASE_URL set.

Prints a Markdown table: median wall time over several runs and the number of SQL queries.
Numbers go to docs/benchmarks.md by hand, with the machine they came from.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="bizdevops-bench-"))
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{TMP / 'bench.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bizdevops.settings")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from bizdevops.roles import Role  # noqa: E402
from initiatives import services as initiative_services  # noqa: E402
from initiatives.models import Initiative, Phase, Status  # noqa: E402
from jobs import services as job_services  # noqa: E402
from jobs.models import Job  # noqa: E402
from kpis import services as kpi_services  # noqa: E402
from kpis.models import KPI, Measurement  # noqa: E402
from kpis.selectors import series  # noqa: E402

RUNS = 7
rows: list[tuple[str, float, int]] = []


def measure(name: str, func: Callable[[], object], runs: int = RUNS) -> None:
    times, queries = [], 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            func()
            times.append(time.perf_counter() - start)
        queries = len(captured)
    rows.append((name, statistics.median(times) * 1000, queries))
    print(f"{name}: {rows[-1][1]:.1f} ms, {queries} queries", file=sys.stderr)


def main() -> None:
    setup_test_environment()
    call_command("migrate", verbosity=0)
    User = get_user_model()
    pm = User.objects.create_user("bench-pm")
    pm.groups.add(Group.objects.get(name=Role.PROGRAM_MANAGER.value))
    admin = User.objects.create_superuser("bench-admin", password=None)
    unit = initiative_services.business_unit_save(user=admin, name="Bench unit")
    client = Client()
    client.force_login(pm)

    def make_initiatives(total: int) -> None:
        for n in range(Initiative.objects.count(), total):
            initiative = initiative_services.initiative_create(
                user=pm, title=f"Bench initiative {n}", business_unit=unit
            )
            kpi_services.kpi_define(initiative=initiative, user=pm, name="KPI", target=1)
        # Spread them over the phases for the board (a bulk move; gates are not benchmarked).
        ids = list(Initiative.objects.values_list("pk", flat=True))
        Initiative.objects.filter(pk__in=ids[1::3]).update(phase=Phase.DEV)
        Initiative.objects.filter(pk__in=ids[2::3]).update(phase=Phase.OPS)

    for total in (50, 500):
        make_initiatives(total)
        measure(f"board page, {total} initiatives", lambda: client.get("/board/"))
        measure(
            f"API /initiatives/?page_size=50, {total} initiatives",
            lambda: client.get("/api/v1/initiatives/", {"page_size": 50}),
        )

    kpi = KPI.objects.order_by("pk").first()
    if kpi is None:
        raise SystemExit("no KPI was created")
    end = timezone.now()
    count = 1_000_000
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "INSERT INTO kpis_measurement (kpi_id, as_of, value, origin, recorded_at) "
                "SELECT %s, %s - make_interval(mins => g), g %% 97, 'api', now() "
                "FROM generate_series(1, %s) g",
                [kpi.pk, end, count],
            )
        else:
            cursor.execute(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %s) "
                "INSERT INTO kpis_measurement (kpi_id, as_of, value, origin, recorded_at) "
                "SELECT %s, strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, '-' || n || ' minutes'), "
                "n %% 97, 'api', %s FROM g",
                [count, kpi.pk, end.strftime("%Y-%m-%d %H:%M:%S"), end.isoformat()],
            )
    if Measurement.objects.filter(kpi=kpi).count() != count:
        raise SystemExit("the measurements were not inserted")
    for label, days in (("30 days", 30), ("1 year", 365), ("all (~2 years)", 800)):
        start = end - dt.timedelta(days=days)
        measure(
            f"chart series, 1M measurements, {label} -> <= 500 points",
            partial(series, kpi, start, end),
            runs=3,
        )
    measure(
        "CSV export, 1 year of 1M measurements (streamed)",
        lambda: b"".join(client.get(f"/kpis/{kpi.pk}/export.csv?range=1y").streaming_content),  # type: ignore[attr-defined]
        runs=1,
    )

    jobs = [
        Job(
            kpi=k,
            schedule_kind="interval",
            interval_seconds=60,
            source_kind="python",
            calculation="portfolio.initiatives_in_ops",
            next_run_at=end - dt.timedelta(minutes=1),
            created_by=admin,
        )
        for k in KPI.objects.filter(initiative__phase=Phase.OPS)[:1000]
    ]
    Job.objects.bulk_create(jobs)
    Initiative.objects.filter(phase=Phase.OPS).update(status=Status.ACTIVE)
    measure(
        f"dispatcher, {len(jobs)} due jobs -> runs",
        lambda: job_services.dispatch_due(now=timezone.now()),
        runs=1,
    )

    print(f"\n{connection.vendor}, {os.cpu_count()} cores\n")
    print("| benchmark | median | SQL queries |\n|---|---|---|")
    for name, ms, queries in rows:
        print(f"| {name} | {ms:.1f} ms | {queries} |")


if __name__ == "__main__":
    main()
