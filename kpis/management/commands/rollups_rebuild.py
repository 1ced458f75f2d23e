from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from kpis.rollups import rollups_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the hourly and daily rollups of measurements from the raw values (all KPIs, "
        "or --kpi ID ...): after loading values around the services, or to check them. One "
        "transaction per KPI, holding its row lock; writers of other KPIs carry on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--kpi", type=int, action="append", dest="kpis", metavar="ID", help="repeatable"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        began = time.monotonic()
        step = 1

        def progress(done: int, total: int, kpi_id: int) -> None:
            nonlocal step
            # About a hundred lines for a portfolio, every KPI for a few.
            if done == total or done % step == 0:
                elapsed = time.monotonic() - began
                self.stdout.write(f"  {done}/{total} KPIs (last: {kpi_id}), {elapsed:.1f} s")
            step = max(1, total // 100)

        total = rollups_rebuild(options["kpis"], progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt the rollups of {total} KPIs in {time.monotonic() - began:.1f} s."
            )
        )
