"""A task that does nothing: the baseline of the runs benchmark of `make bench`.

scripts/bench_celery.py loads it into the benchmark's workers with `--include bench_noop` (with
scripts/ on PYTHONPATH), so the same workers, queue and settings (acks_late, prefetch 1) run it
and the KPI runs; it is not part of the application.
"""

from __future__ import annotations

from celery import shared_task

NOOP = "bench_noop.noop"


@shared_task(name=NOOP, ignore_result=True)
def noop(n: int) -> int:
    return n
