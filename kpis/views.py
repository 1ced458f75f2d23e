"""The Ops page for engineers: KPIs and their jobs, register / edit / enable / disable a job,
schedule preview, trial runs and 'run now' with live state, run history."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from bizdevops.errors import DomainError
from bizdevops.web import refusal_status, run_service
from initiatives import selectors as initiative_selectors
from initiatives.models import Status
from initiatives.roles import is_admin
from initiatives.views import HtmxHttpRequest
from kpis import scheduling, selectors, services
from kpis.forms import JobForm
from kpis.models import KPI, Job, Measurement, Run, Trigger


@login_required
def ops(request: HtmxHttpRequest) -> HttpResponse:
    initiatives = list(initiative_selectors.visible(selectors.ops_initiatives(), request.user))
    roles = initiative_selectors.team_roles_of(request.user)
    admin = is_admin(request.user)
    rows = []
    for initiative in initiatives:
        operator = admin or bool(roles.get(initiative.pk, set()) & services.ENGINEER_ROLES)
        rows.append((initiative, operator))
    return render(request, "kpis/ops.html", {"rows": rows})


def _job_or_404(pk: int, user: Any) -> Job:
    try:
        return selectors.job_get(pk, user)
    except Job.DoesNotExist:
        raise Http404("No such job.") from None


def _cleaned_job(form: JobForm) -> dict[str, Any]:
    data = dict(form.cleaned_data)
    data["calculation"] = data.get("calculation") or ""
    for text in ("cron", "sql", "http_path", "json_path"):
        data[text] = data.get(text) or ""
    return data


@login_required
def job_create(request: HtmxHttpRequest, kpi_id: int) -> HttpResponse:
    kpi = get_object_or_404(KPI.objects.select_related("initiative"), pk=kpi_id)
    if not services.can_operate(request.user, kpi.initiative):
        raise PermissionDenied("Only data or devops engineers of the team register jobs.")
    existing = Job.objects.filter(kpi=kpi).values_list("pk", flat=True).first()
    if existing is not None:
        messages.info(request, f"{kpi.name} has a job already.")
        return redirect("job-detail", pk=existing)
    form = JobForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        job = run_service(
            form,
            lambda: services.job_register(kpi=kpi, user=request.user, **_cleaned_job(form)),
        )
        if job is not None:
            messages.success(request, f"Job registered for {kpi.name}. Start a trial run.")
            return redirect("job-detail", pk=job.pk)
    status = refusal_status(form) if request.method == "POST" else 200
    context = {"form": form, "kpi": kpi, "initiative": kpi.initiative}
    return render(request, "kpis/job_form.html", context, status=status)


@login_required
def job_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk, request.user)
    initiative = job.kpi.initiative
    operator = services.can_operate(request.user, initiative)
    form = JobForm(request.POST or None, initial=JobForm.initial_for(job)) if operator else None
    status = 200
    if request.method == "POST":
        if form is None:
            raise PermissionDenied("Only data or devops engineers of the team operate jobs.")
        if form.is_valid():
            changes = {k: v for k, v in _cleaned_job(form).items() if k in form.changed_data}
            saved = run_service(
                form, lambda: services.job_update(job=job, user=request.user, **changes)
            )
            if saved is not None:
                messages.success(request, "Job saved.")
                return redirect("job-detail", pk=job.pk)
        status = refusal_status(form)
    context = {
        "job": job,
        "kpi": job.kpi,
        "initiative": initiative,
        "form": form,
        "operator": operator,
        "may_run": services.can_run(request.user, initiative),
        "runs": selectors.run_history(job),
        "upcoming": _upcoming(job),
    }
    template = (
        "kpis/job_detail.html#runs"
        if request.htmx and request.method == "GET"
        else ("kpis/job_detail.html")
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
def job_toggle(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk, request.user)
    services.job_update(job=job, user=request.user, enabled=not job.enabled)
    messages.success(request, "Job enabled." if not job.enabled else "Job disabled.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("job-detail", kwargs={"pk": pk})
    return redirect(target)


@login_required
@require_POST
def run_start(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk, request.user)
    trigger = Trigger.TRIAL if request.POST.get("trigger") == Trigger.TRIAL else Trigger.MANUAL
    try:
        run = services.run_request(job=job, user=request.user, trigger=trigger)
    except DomainError as refusal:
        if not request.htmx:
            raise  # the friendly refusal page
        context = {"reason": refusal.message}
        return render(request, "kpis/_run_refused.html", context, status=refusal.status_code)
    if request.htmx:
        return render(request, "kpis/_run_status.html", {"run": run, "job": job})
    messages.success(request, f"{run.get_trigger_display()} queued.")
    return redirect("job-detail", pk=pk)


@login_required
def run_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("job"), pk=pk)
    return render(request, "kpis/_run_status.html", {"run": run, "job": run.job})


@login_required
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
    return render(request, "kpis/_schedule_preview.html", {"times": times, "error": error})


# Dashboards ----------------------------------------------------------------------------------


def _range(request: HtmxHttpRequest) -> tuple[str, dt.datetime, dt.datetime]:
    name = request.GET.get("range", selectors.DEFAULT_RANGE)
    if name not in selectors.RANGES:
        name = selectors.DEFAULT_RANGE
    end = timezone.now()
    return name, end - selectors.RANGES[name], end


@login_required
def dashboards(request: HtmxHttpRequest) -> HttpResponse:
    units = list(selectors.visible_units(request.user))
    if len(units) == 1:
        return redirect("unit-dashboard", pk=units[0].pk)
    return render(request, "kpis/dashboards.html", {"units": units})


@login_required
def unit_dashboard(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    unit = get_object_or_404(selectors.visible_units(request.user), pk=pk)
    kpis = KPI.objects.filter(initiative__business_unit=unit).exclude(
        initiative__status=Status.CANCELLED
    )
    groups: dict[int, list[selectors.Tile]] = {}
    for tile in selectors.tiles(kpis):
        groups.setdefault(tile.kpi.initiative_id, []).append(tile)
    initiatives = [(tiles[0].kpi.initiative, tiles) for tiles in groups.values()]
    context = {
        "unit": unit,
        "initiatives": initiatives,
        "units": selectors.visible_units(request.user),
    }
    return render(request, "kpis/unit_dashboard.html", context)


@login_required
def initiative_kpis(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = initiative_selectors.initiative_get(key, request.user)
    range_name, start, end = _range(request)
    tiles = selectors.tiles(initiative.kpis.all())
    data = selectors.series_many([tile.kpi for tile in tiles], start, end)
    charts = [(tile, _chart(tile.kpi, start, end, data[tile.kpi.pk])) for tile in tiles]
    context = {
        "initiative": initiative,
        "charts": charts,
        "range": range_name,
        "ranges": list(selectors.RANGES),
    }
    return render(request, "kpis/initiative_kpis.html", context)


def _chart(
    kpi: KPI, start: dt.datetime, end: dt.datetime, data: selectors.Series | None = None
) -> dict[str, Any]:
    data = data or selectors.series(kpi, start, end)
    return {
        "id": f"chart-data-{kpi.pk}",
        "kpi": kpi.name,
        "unit": kpi.unit,
        "start": int(start.timestamp()),
        "end": int(end.timestamp()),
        "bucket_seconds": data.bucket_seconds,
        "points": data.points,
        "target": kpi.target,
        "warning": kpi.warning_threshold,
        "critical": kpi.critical_threshold,
    }


@login_required
def kpi_chart(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    kpis = initiative_selectors.visible(KPI.objects.all(), request.user, "initiative__")
    kpi = get_object_or_404(kpis.select_related("initiative__business_unit"), pk=pk)
    range_name, start, end = _range(request)
    context = {
        "kpi": kpi,
        "chart": _chart(kpi, start, end),
        "range": range_name,
        "ranges": list(selectors.RANGES),
    }
    return render(request, "kpis/_chart.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
def kpi_csv(request: HtmxHttpRequest, pk: int) -> StreamingHttpResponse:
    """The raw measurements of a KPI in the chosen range, streamed: the rows are read in
    chunks from a server-side cursor and written as they come, never all in memory."""
    kpis = initiative_selectors.visible(KPI.objects.all(), request.user, "initiative__")
    kpi = get_object_or_404(kpis.select_related("initiative__business_unit"), pk=pk)
    range_name, start, end = _range(request)
    rows = (
        Measurement.objects.filter(kpi=kpi, as_of__gte=start, as_of__lt=end)
        .order_by("as_of")
        .values_list("as_of", "value", "origin")
        .iterator(chunk_size=5000)
    )
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(["as_of", "value", "origin"])
        for as_of, value, origin in rows:
            yield writer.writerow([as_of.isoformat(), repr(value), origin])

    filename = f"{kpi.initiative.key}-{slugify(kpi.name)}-{range_name}.csv"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
