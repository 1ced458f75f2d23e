"""The Ops pages for engineers: KPIs and their jobs, register / edit / enable / disable a job,
schedule preview, trial runs and 'run now' with live state, run history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from csp.constants import NONCE
from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import trigger_client_event
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from bizdevops.api import CursorPages
from bizdevops.errors import DomainError
from bizdevops.htmx import HtmxHttpRequest, partial_wanted, vary_on_htmx
from bizdevops.web import refusal_status, require_get_or_post, run_service
from jobs import permissions, scheduling, selectors, services, sources
from jobs.forms import JobForm, RunFilterForm
from jobs.models import Job, Run, Trigger
from kpis.models import KPI
from kpis.selectors import kpi_get

OPS_PAGE = 20
RUN_PAGE = 50
F = TypeVar("F", bound=Callable[..., HttpResponse])


def editor_csp(view: F) -> F:
    """The job form's SQL editor (CodeMirror) writes its styles into a <style> element: the
    job form pages let a style carrying the request's nonce through, and no other inline
    style (sql-editor.js hands the nonce to CodeMirror)."""
    return cast(F, csp_update({"style-src": [NONCE]})(cast(Any, view)))


# The event the run state box sends when a run is queued or finishes: the history reloads.
RUNS_CHANGED = "runs-changed"


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


def _wants_test(request: HtmxHttpRequest) -> bool:
    return request.method == "POST" and "test" in request.POST


def _source_test(
    request: HtmxHttpRequest, form: JobForm, kpi: KPI
) -> tuple[services.SourceTest, int]:
    """The "Test query" button: the source fields of the form run once, nothing saved."""
    form.is_valid()
    wrong = [name for name in services.SOURCE_FIELDS if name in form.errors]
    if wrong:
        errors = [str(error) for name in wrong for error in form.errors[name]]
        return services.SourceTest(error=" ".join(errors)), 400
    values = {name: form.cleaned_data.get(name) for name in services.SOURCE_FIELDS}
    try:
        return services.job_test(kpi=kpi, user=request.user, **values), 200
    except DomainError as refusal:
        return services.SourceTest(error=refusal.message), refusal.status_code


def _test_response(
    request: HtmxHttpRequest, form: JobForm, kpi: KPI, page: str, context: dict[str, Any]
) -> HttpResponse:
    test, status = _source_test(request, form, kpi)
    if partial_wanted(request):
        fragment = {"test": test, "kpi": kpi}
        return render(request, "jobs/_job_fields.html#test-result", fragment, status=status)
    return render(request, page, {**context, "form": form, "test": test}, status=status)


@login_required
@require_get_or_post
@editor_csp
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
    if _wants_test(request):
        page: dict[str, Any] = {"kpi": kpi, "initiative": kpi.initiative}
        return _test_response(request, form, kpi, "jobs/job_form.html", page)
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


def _run_page(request: HtmxHttpRequest, job: Job) -> dict[str, Any]:
    """A cursor page of the job's runs, newest first, with the filters of the URL (one
    query whatever the page: no count)."""
    filters = RunFilterForm(
        request.GET if ("state" in request.GET or "trigger" in request.GET) else None
    )
    wanted = filters.filters()
    pages = CursorPages("-scheduled_for")
    pages.page_size = RUN_PAGE
    pages.max_page_size = RUN_PAGE
    try:
        runs: list[Run] = list(
            pages.paginate_queryset(selectors.runs_filtered(job, **wanted), Request(request)) or []
        )
    except NotFound:
        raise Http404("That page of runs does not exist.") from None
    return {
        "runs": runs,
        "run_filters": filters,
        "filtered": any(wanted.values()),
        "newer_url": _local(pages.get_previous_link()),
        "older_url": _local(pages.get_next_link()),
    }


def _local(link: str | None) -> str:
    """A link of this site as a path and query (the cursor pages build absolute ones)."""
    if not link:
        return ""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@login_required
@require_get_or_post
@vary_on_htmx
@editor_csp
def job_detail(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_get(job_id, request.user)
    initiative = job.kpi.initiative
    operator = permissions.can_operate(request.user, initiative)
    if request.method == "GET" and partial_wanted(request):
        context = {"job": job, "kpi": job.kpi, "initiative": initiative}
        return render(request, "jobs/job_detail.html#runs", context | _run_page(request, job))
    form = None
    if operator:
        form = JobForm(
            request.POST or None,
            initial=JobForm.initial_for(job),
            data_sources=selectors.data_sources_visible_to(request.user),
        )
    status = 200
    if request.method == "POST" and form is None:
        raise PermissionDenied(permissions.can_operate.refusal_for(initiative))
    if form is not None and _wants_test(request):
        return _test_response(
            request, form, job.kpi, "jobs/job_detail.html", _detail_context(request, job)
        )
    if request.method == "POST" and form is not None:
        if form.is_valid():
            changes = {k: v for k, v in _cleaned_job(form).items() if k in form.changed_data}
            saved = run_service(
                form, lambda: services.job_update(job=job, user=request.user, **changes)
            )
            if saved is not None:
                messages.success(request, "Job saved.")
                return redirect("job-detail", job_id=job.pk)
        status = refusal_status(form)
    context = _detail_context(request, job) | {"form": form}
    return render(request, "jobs/job_detail.html", context, status=status)


def _detail_context(request: HtmxHttpRequest, job: Job) -> dict[str, Any]:
    initiative = job.kpi.initiative
    return {
        "job": job,
        "kpi": job.kpi,
        "initiative": initiative,
        "operator": permissions.can_operate(request.user, initiative),
        "may_run": permissions.can_run(request.user, initiative),
        "upcoming": _upcoming(job),
        **_run_page(request, job),
    }


@login_required
@require_safe
def job_schema(request: HtmxHttpRequest, kpi_id: int) -> HttpResponse:
    """The schema browser of the job form: the tables and columns of a database data source,
    for who may edit the KPI's job (htmx swaps the panel; without JavaScript a page)."""
    kpi = kpi_get(kpi_id, request.user)
    permissions.can_operate.check(request.user, kpi.initiative)
    chosen = request.GET.get("data_source", "")
    context: dict[str, Any] = {"kpi": kpi, "initiative": kpi.initiative, "chosen": chosen}
    if chosen:
        try:
            schema = selectors.data_source_schema(kpi=kpi, source_id=chosen, user=request.user)
            context |= {"schema": schema, "completion": schema.completion()}
        except Http404:
            context["not_database"] = True
        except sources.SourceError as error:
            context["error"] = str(error)
    if partial_wanted(request):
        return render(request, "jobs/_schema.html", context)
    context["databases"] = selectors.database_sources_visible_to(request.user)
    return render(request, "jobs/schema.html", context)


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
        response = render(request, "jobs/_run_status.html", _status_context(run))
        return trigger_client_event(response, RUNS_CHANGED, {"run": run.pk})
    messages.success(request, f"{run.get_trigger_display()} queued.")
    return redirect("job-detail", job_id=job_id)


def _status_context(run: Run) -> dict[str, Any]:
    job = run.job
    return {"run": run, "job": job, "unit_warning": sources.unit_mismatch(job, job.kpi.unit)}


@login_required
@require_safe
def run_status(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(run_id, request.user)
    response = render(request, "jobs/_run_status.html", _status_context(run))
    if run.is_finished:
        # The last answer of the polling box: the run history below it shows the result.
        trigger_client_event(response, RUNS_CHANGED, {"run": run.pk, "state": run.state})
    return response


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
