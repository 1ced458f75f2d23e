"""Create the measurement partitions ahead and retire raw values older than the retention
cutoff, as the periodic task does, without its time budget (kpis/partitions.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kpis import partitions


class Command(BaseCommand):
    help = (
        "PostgreSQL: create this month's partition of measurements and "
        "MEASUREMENT_PARTITIONS_AHEAD months after it, and one for each month waiting in the "
        "default partition (moving its rows); everywhere: retire raw values older than "
        "MEASUREMENT_RAW_RETENTION_DAYS (whole months dropped, their rollups kept). Run it as "
        "the owner of the tables (as `migrate` runs, with DATABASE_RUNTIME_ROLE set) when the "
        "app's own role may not create tables: at deploy and from cron, monthly at least."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--list", action="store_true", help="Only list the partitions and what is missing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            self._list()
            return
        report = partitions.partitions_maintain()
        for name in report.created:
            self.stdout.write(f"Created {name}")
        for name in report.dropped:
            self.stdout.write(f"Dropped {name}")
        self.stdout.write(report.summary().capitalize() + ".")
        if report.problems:
            raise CommandError("\n".join(report.problems))

    def _list(self) -> None:
        if not partitions.is_partitioned():
            self.stdout.write("Measurements are not partitioned (PostgreSQL only).")
        for partition in partitions.partitions_list():
            if partition.is_default:
                self.stdout.write(f"{partition.name}  DEFAULT")
            else:
                self.stdout.write(f"{partition.name}  {partition.start} .. {partition.end}")
        cutoff = partitions.retention_cutoff()
        self.stdout.write(
            "Raw values kept for ever."
            if cutoff is None
            else f"Raw values older than {cutoff:%Y-%m-%d %H:%M} UTC are retired."
        )
        for problem in partitions.partitions_problems():
            self.stdout.write(self.style.WARNING(problem))
