"""The Ops pages for engineers: KPIs and their jobs, register / edit / enable / disable a job,
schedule preview, trial runs and 'run now' with live state, run history."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from bizdevops.errors import DomainError
from bizdevops.htmx import HtmxHttpRequest, vary_on_htmx
from bizdevops.web import refusal_status, require_get_or_post, run_service
from jobs import permissions, scheduling, selectors, services
from jobs.forms import JobForm
from jobs.models import Job, Trigger
from kpis.selectors import kpi_get

OPS_PAGE = 20


@login_required
@require_safe
def ops(request: HtmxHttpRequest) -> HttpResponse:
    operates = permissions.operator_of(request.user)
    # A page of initiatives at a time: a portfolio has thousands in Dev and Ops.
    page = Paginator(selectors.ops_initiatives_visible_to(request.user), OPS_PAGE).get_page(
        request.GET.get("page")
    )
    rows = [(initiative, operates(initiative)) for initiative in page]
    return render(request, "jobs/ops.html", {"rows": rows, "page": page})


def _cleaned_job(form: JobForm) -> dict[str, Any]:
    data = dict(form.cleaned_data)
    data["calculation"] = data.get("calculation") or ""
    for text in ("cron", "sql", "http_path", "json_path"):
        data[text] = data.get(text) or ""
    return data


@login_required
@require_get_or_post
def job_create(request: HtmxHttpRequest, kpi_id: int) -> HttpResponse:
    kpi = kpi_get(kpi_id, request.user)
    permissions.can_register_job.check(request.user, kpi.initiative)
    existing = selectors.job_of(kpi)
    if existing is not None:
        messages.info(request, f"{kpi.name} has a job already.")
        return redirect("job-detail", job_id=existing.pk)
    form = JobForm(
        request.POST or None, data_sources=selectors.data_sources_visible_to(request.user)
    )
    if request.method == "POST" and form.is_valid():
        job = run_service(
            form,
            lambda: services.job_register(kpi=kpi, user=request.user, **_cleaned_job(form)),
        )
        if job is not None:
            messages.success(request, f"Job registered for {kpi.name}. Start a trial run.")
            return redirect("job-detail", job_id=job.pk)
    status = refusal_status(form) if request.method == "POST" else 200
    context = {"form": form, "kpi": kpi, "initiative": kpi.initiative}
    return render(request, "jobs/job_form.html", context, status=status)


@login_required
@require_get_or_post
@vary_on_htmx
def job_detail(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_get(job_id, request.user)
    initiative = job.kpi.initiative
    operator = permissions.can_operate(request.user, initiative)
    form = None
    if operator:
        form = JobForm(
            request.POST or None,
            initial=JobForm.initial_for(job),
            data_sources=selectors.data_sources_visible_to(request.user),
        )
    status = 200
    if request.method == "POST":
        if form is None:
            raise PermissionDenied(permissions.can_operate.refusal_for(initiative))
        if form.is_valid():
            changes = {k: v for k, v in _cleaned_job(form).items() if k in form.changed_data}
            saved = run_service(
                form, lambda: services.job_update(job=job, user=request.user, **changes)
            )
            if saved is not None:
                messages.success(request, "Job saved.")
                return redirect("job-detail", job_id=job.pk)
        status = refusal_status(form)
    context = {
        "job": job,
        "kpi": job.kpi,
        "initiative": initiative,
        "form": form,
        "operator": operator,
        "may_run": permissions.can_run(request.user, initiative),
        "runs": selectors.run_history(job),
        "upcoming": _upcoming(job),
    }
    template = (
        "jobs/job_detail.html#runs"
        if request.htmx and request.method == "GET"
        else "jobs/job_detail.html"
    )
    return render(request, template, context, status=status)


def _upcoming(job: Job) -> list[Any]:
    try:
        return scheduling.upcoming(
            job.schedule_kind, job.cron, job.interval_seconds, timezone.now()
        )
    except DomainError:
        return []


@login_required
@require_POST
def job_toggle(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_get(job_id, request.user)
    services.job_update(job=job, user=request.user, enabled=not job.enabled)
    messages.success(request, "Job enabled." if not job.enabled else "Job disabled.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("job-detail", kwargs={"job_id": job_id})
    return redirect(target)


@login_required
@require_POST
def run_start(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_get(job_id, request.user)
    trigger = Trigger.TRIAL if request.POST.get("trigger") == Trigger.TRIAL else Trigger.MANUAL
    try:
        run = services.run_request(job=job, user=request.user, trigger=trigger)
    except DomainError as refusal:
        if not request.htmx:
            raise  # the friendly refusal page
        context = {"reason": refusal.message}
        return render(request, "jobs/_run_refused.html", context, status=refusal.status_code)
    if request.htmx:
        return render(request, "jobs/_run_status.html", {"run": run, "job": job})
    messages.success(request, f"{run.get_trigger_display()} queued.")
    return redirect("job-detail", job_id=job_id)


@login_required
@require_safe
def run_status(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(run_id, request.user)
    return render(request, "jobs/_run_status.html", {"run": run, "job": run.job})


@login_required
@require_safe
def schedule_preview(request: HtmxHttpRequest) -> HttpResponse:
    """The next five fire times of a schedule being typed (htmx, from the job form)."""
    kind = request.GET.get("schedule_kind", "")
    cron = request.GET.get("cron", "")
    raw = request.GET.get("interval_seconds", "")
    interval = int(raw) if raw.isascii() and raw.isdigit() else None
    try:
        times = scheduling.upcoming(kind, cron, interval, timezone.now())
        error = ""
    except DomainError as refusal:
        times, error = [], refusal.message
    return render(request, "jobs/_schedule_preview.html", {"times": times, "error": error})
