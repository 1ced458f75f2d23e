"""The automatic gate criterion about KPI jobs (Dev → Ops)."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.urls import reverse

from initiatives.models import ENGINEER_ROLES, Initiative, TeamRole
from jobs.models import Job, Run, RunState, Trigger
from phases.checks import CheckResult, Guide, Step, guide, register

# The request the accountable PM sends an engineer from the criterion (notifications).
JOB_REQUEST = "job_request"


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


@guide("kpi_jobs_trial_passed")
def kpi_jobs_guide(initiative: Initiative) -> Guide:
    """Where each KPI's job is registered (the job-create page) or brought through its trial
    (the job page), and the team's engineers, who may do it (`permissions.can_register_job`).
    Three queries whatever the number of KPIs."""
    last_trial = Run.objects.filter(job=OuterRef("pk"), trigger=Trigger.TRIAL).order_by(
        "-scheduled_for", "-id"
    )
    kpis = list(initiative.kpis.order_by("name"))
    jobs = {
        job.kpi_id: job
        for job in Job.objects.filter(kpi__in=kpis).annotate(
            last_trial_state=Subquery(last_trial.values("state")[:1])
        )
    }
    steps = []
    if not kpis:
        url = reverse("initiative-detail", kwargs={"key": initiative.key})
        steps.append(Step("Define a KPI first", f"{url}#kpis"))
    for kpi in kpis:
        job = jobs.get(kpi.pk)
        name = f"“{kpi.name}”"
        if job is None:
            steps.append(
                Step(
                    f"Register the job of {name}",
                    reverse("job-create", kwargs={"kpi_id": kpi.pk}),
                    "kpi",
                    kpi.pk,
                    f"register the recalculation job of the KPI {name}",
                )
            )
        elif not job.enabled:
            steps.append(
                Step(
                    f"Enable the job of {name}",
                    reverse("job-detail", kwargs={"job_id": job.pk}),
                    "kpi",
                    kpi.pk,
                    f"enable the job of the KPI {name} and start its trial run",
                )
            )
        elif job.last_trial_state != RunState.SUCCEEDED:
            steps.append(
                Step(
                    f"Start a trial run of the job of {name}",
                    reverse("job-detail", kwargs={"job_id": job.pk}),
                    "kpi",
                    kpi.pk,
                    f"get the job of the KPI {name} through a successful trial run",
                )
            )
    engineers = [
        membership.user
        for membership in initiative.memberships.filter(
            left_at__isnull=True, role__in=ENGINEER_ROLES
        )
        .select_related("user")
        .order_by("user__first_name", "user__last_name", "user__username")
    ]
    helpers = list({user.pk: user for user in engineers}.values())  # one per person
    return Guide(
        steps=steps,
        who="a data or devops engineer on the team",
        helpers=helpers,
        ask_kind=JOB_REQUEST,
        team_role=TeamRole.DATA_ENGINEER,
    )
