"""The automatic gate criterion about KPI jobs (Dev → Ops)."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery

from initiatives.models import Initiative
from jobs.models import Job, Run, RunState, Trigger
from phases.checks import CheckResult, register


@register("kpi_jobs_trial_passed", "Every KPI has an enabled job whose last trial run succeeded")
def kpi_jobs_trial_passed(initiative: Initiative) -> CheckResult:
    """Two queries whatever the number of KPIs (the KPIs; their jobs with the last trial)."""
    kpis = list(initiative.kpis.all())
    if not kpis:
        return CheckResult(False, "No KPI defined.")
    last_trial = Run.objects.filter(job=OuterRef("pk"), trigger=Trigger.TRIAL).order_by(
        "-scheduled_for", "-id"
    )
    jobs = {
        job.kpi_id: job
        for job in Job.objects.filter(kpi__in=kpis).annotate(
            last_trial_state=Subquery(last_trial.values("state")[:1])
        )
    }
    missing, failing = [], []
    for kpi in kpis:
        job = jobs.get(kpi.pk)
        if job is None or not job.enabled:
            missing.append(kpi.name)
            continue
        if job.last_trial_state != RunState.SUCCEEDED:
            failing.append(kpi.name)
    problems = []
    if missing:
        problems.append("no enabled job: " + ", ".join(missing))
    if failing:
        problems.append("no successful last trial run: " + ", ".join(failing))
    if problems:
        text = "; ".join(problems)
        return CheckResult(False, text[0].upper() + text[1:] + ".")
    return CheckResult(True, "Every KPI has a job whose trial run succeeded.")
