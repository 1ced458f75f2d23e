"""Named Python calculations that jobs can pick (registered in code, never typed in a page)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from initiatives.models import Initiative, Phase, Status
from jobs.models import Job
from jobs.sources import calculation
from phases.models import GateDecision


@calculation(
    "portfolio.initiatives_in_ops", "Portfolio: initiatives active in Ops", unit="initiatives"
)
def initiatives_in_ops(job: Job) -> float:
    return float(Initiative.objects.filter(phase=Phase.OPS, status=Status.ACTIVE).count())


@calculation(
    "portfolio.dev_overdue_percent",
    "Portfolio: % of Dev initiatives past their timebox",
    unit="%",
)
def dev_overdue_percent(job: Job) -> float:
    in_dev = list(Initiative.objects.filter(phase=Phase.DEV, status=Status.ACTIVE))
    if not in_dev:
        return 0.0
    return 100.0 * sum(1 for i in in_dev if i.dev_overdue) / len(in_dev)


@calculation(
    "portfolio.decisions_last_30_days",
    "Portfolio: gate decisions in the last 30 days",
    unit="decisions",
)
def decisions_last_30_days(job: Job) -> float:
    since = timezone.now() - dt.timedelta(days=30)
    return float(GateDecision.objects.filter(decided_at__gte=since).count())


@calculation("kpi.hours_since_last_value", "This KPI: hours since its last measurement", unit="h")
def hours_since_last_value(job: Job) -> float:
    last = job.kpi.measurements.order_by("-as_of").values_list("as_of", flat=True).first()
    if last is None:
        return 0.0
    return (timezone.now() - last).total_seconds() / 3600
