"""The baselines of the runs benchmark of `make bench`: a task that does nothing, and one that
only makes one durable commit.

scripts/bench_celery.py loads them into the benchmark's workers with `--include bench_noop` (with
scripts/ on PYTHONPATH), so the same workers, queue and settings (acks_late, prefetch 1) run it
and the KPI runs; it is not part of the application.
"""

from __future__ import annotations

from celery import shared_task

NOOP = "bench_noop.noop"
NOOP_COMMIT = "bench_noop.noop_commit"
# scripts/bench_celery.py creates it in the scratch database before the runs benchmark.
COMMIT_TABLE = "bench_noop_commit"


@shared_task(name=NOOP, ignore_result=True)
def noop(n: int) -> int:
    return n


@shared_task(name=NOOP_COMMIT, ignore_result=True)
def noop_commit(n: int) -> int:
    """A no-op task that makes one durable commit of one row on the app's database: the floor
    of a KPI run, which must commit its result in one transaction of its own."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {COMMIT_TABLE} (n) VALUES (%s)", [n])  # noqa: S608
    return n
