"""Pages for initiatives: start page, board, archive, create / edit, the initiative page and
its team, handover, iteration and KPI actions. Every write is a service call."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from bizdevops.web import refusal_status, run_service
from initiatives import permissions, selectors, services
from initiatives.filters import ArchiveFilter, InitiativeFilter
from initiatives.forms import (
    FeedbackForm,
    HandoverForm,
    InitiativeForm,
    IterationForm,
    MemberForm,
)
from initiatives.models import Initiative, Phase
from initiatives.roles import is_admin
from kpis import services as kpi_services
from kpis.forms import KPIForm
from phases import selectors as phase_selectors
from phases.forms import DecisionForm

DETAIL = "initiatives/initiative_detail.html"


class HtmxHttpRequest(HttpRequest):
    """A logged-in request (every view here is `login_required`) with django-htmx details."""

    htmx: HtmxDetails
    user: User  # type: ignore[assignment]


def _partial_wanted(request: HtmxHttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    initiatives = selectors.my_initiatives(request.user)
    columns = selectors.by_phase(initiatives)
    count = sum(len(cards) for _, cards in columns)
    return render(request, "initiatives/home.html", {"columns": columns, "count": count})


@login_required
def board(request: HtmxHttpRequest) -> HttpResponse:
    filters = InitiativeFilter(
        request.GET or None,
        queryset=selectors.visible(selectors.open_initiatives(), request.user),
        request=request,
    )
    columns = selectors.by_phase(filters.qs)
    context = {
        "filter": filters,
        "columns": columns,
        "count": sum(len(cards) for _, cards in columns),
    }
    template = (
        "initiatives/board.html#board" if _partial_wanted(request) else "initiatives/board.html"
    )
    return render(request, template, context)


@login_required
def archive(request: HtmxHttpRequest) -> HttpResponse:
    filters = ArchiveFilter(
        request.GET or None,
        queryset=selectors.visible(selectors.closed_initiatives(), request.user),
        request=request,
    )
    context = {"filter": filters, "initiatives": list(filters.qs)}
    template = (
        "initiatives/archive.html#archive"
        if _partial_wanted(request)
        else "initiatives/archive.html"
    )
    return render(request, template, context)


@login_required
def initiative_create(request: HtmxHttpRequest) -> HttpResponse:
    if not permissions.can_create_initiative(request.user):
        raise PermissionDenied("Only program managers and admins create initiatives.")
    admin = is_admin(request.user)
    form = InitiativeForm(request.POST or None, may_name_accountable=admin)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        initiative = run_service(
            form,
            lambda: services.initiative_create(
                user=request.user,
                accountable=data.pop("accountable", None),
                **data,
            ),
        )
        if initiative is not None:
            messages.success(request, f"{initiative.key} created. You can now staff its team.")
            return redirect("initiative-detail", key=initiative.key)
    status = refusal_status(form) if request.method == "POST" else 200
    return render(request, "initiatives/initiative_form.html", {"form": form}, status=status)


@login_required
def initiative_edit(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    if not permissions.can_manage(request.user, initiative) or initiative.is_final:
        raise PermissionDenied("Only the accountable program manager or an admin edits this.")
    form = InitiativeForm(request.POST or None, initial=InitiativeForm.initial_for(initiative))
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if run_service(
            form,
            lambda: services.initiative_update(initiative=initiative, user=request.user, **changes),
        ):
            messages.success(request, f"{initiative.key} saved.")
            return redirect("initiative-detail", key=initiative.key)
        if not changes:
            return redirect("initiative-detail", key=initiative.key)
    status = refusal_status(form) if request.method == "POST" else 200
    context = {"form": form, "initiative": initiative}
    return render(request, "initiatives/initiative_form.html", context, status=status)


def _detail_context(
    request: HtmxHttpRequest, initiative: Initiative, **forms: Any
) -> dict[str, Any]:
    user = request.user
    panel = phase_selectors.gate_panel(initiative, user)
    return {
        "initiative": initiative,
        "phases": Phase.choices,
        "can_manage": permissions.can_manage(user, initiative) and not initiative.is_final,
        "can_record_iteration": not initiative.is_final
        and permissions.can_record_iteration(user, initiative),
        "can_give_feedback": not initiative.is_final
        and permissions.can_give_feedback(user, initiative),
        "can_define_kpi": not initiative.is_final and kpi_services.can_define_kpi(user, initiative),
        "team": selectors.team(initiative),
        "iterations": selectors.iterations(initiative),
        "kpis": list(initiative.kpis.all()),
        "panel": panel,
        "history": phase_selectors.timeline(initiative),
        "member_form": forms.get("member_form") or MemberForm(),
        "handover_form": forms.get("handover_form") or HandoverForm(initiative=initiative),
        "iteration_form": forms.get("iteration_form") or IterationForm(),
        "feedback_form": forms.get("feedback_form"),
        "feedback_for": forms.get("feedback_for"),
        "kpi_form": forms.get("kpi_form") or KPIForm(),
        "decision_form": forms.get("decision_form") or DecisionForm(decisions=panel.decisions),
        "refused": forms.get("refused", []),
        "tick_form": forms.get("tick_form"),
        "tick_for": forms.get("tick_for"),
    }


def render_detail(
    request: Any,
    initiative: Initiative,
    *,
    part: str | None = None,
    also: Iterable[str] = (),
    status: int = 200,
    **forms: Any,
) -> HttpResponse:
    """The initiative page; for htmx, the named partial plus out-of-band updates of `also`."""
    context = _detail_context(request, initiative, **forms)
    if part and _partial_wanted(request):
        context["parts"] = [f"{DETAIL}#{part}"]
        context["oob_parts"] = [f"{DETAIL}#{name}" for name in also]
        return render(request, "initiatives/_detail_update.html", context, status=status)
    return render(request, DETAIL, context, status=status)


def after_action(
    request: Any, key: str, *, part: str, also: Iterable[str] = (), reload: bool = False
) -> HttpResponse:
    """Post/redirect/get without JavaScript; with htmx, the changed parts (or a full reload
    when the change touches the whole page)."""
    url = reverse("initiative-detail", kwargs={"key": key})
    if not request.htmx:
        return redirect(f"{url}#{part}")
    if reload:
        return HttpResponseClientRedirect(url)
    return render_detail(request, selectors.initiative_get(key, request.user), part=part, also=also)


@login_required
def initiative_detail(request: HtmxHttpRequest, key: str) -> HttpResponse:
    return render_detail(request, selectors.initiative_get(key, request.user))


@login_required
@require_POST
def member_add(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    form = MemberForm(request.POST)
    if form.is_valid():
        member = form.cleaned_data["user"]
        added = run_service(
            form,
            lambda: services.member_add(
                initiative=initiative,
                member=member,
                role=form.cleaned_data["role"],
                user=request.user,
            ),
        )
        if added is not None:
            messages.success(
                request, f"{member.get_username()} joined as {added.get_role_display().lower()}."
            )
            return after_action(request, key, part="team", also=("gate-panel", "history"))
    return render_detail(
        request, initiative, part="team", status=refusal_status(form), member_form=form
    )


@login_required
@require_POST
def member_remove(request: HtmxHttpRequest, key: str, membership_id: int) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    membership = get_object_or_404(initiative.memberships, pk=membership_id, left_at__isnull=True)
    services.member_remove(membership=membership, user=request.user)
    messages.success(request, f"{membership.user.get_username()} left the team.")
    return after_action(request, key, part="team", also=("gate-panel", "history"))


@login_required
def hand_over(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    if not permissions.can_manage(request.user, initiative) or initiative.is_final:
        raise PermissionDenied("Only the accountable program manager or an admin hands over.")
    form = HandoverForm(request.POST or None, initiative=initiative)
    if request.method == "POST" and form.is_valid():
        to = form.cleaned_data["to"]
        if run_service(
            form,
            lambda: services.initiative_hand_over(
                initiative=initiative, to=to, reason=form.cleaned_data["reason"], user=request.user
            ),
        ):
            messages.success(request, f"{to.get_username()} is now accountable for {key}.")
            return after_action(request, key, part="team", reload=True)
    status = refusal_status(form) if request.method == "POST" else 200
    return render_detail(request, initiative, part="handover", status=status, handover_form=form)


@login_required
@require_POST
def iteration_add(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    form = IterationForm(request.POST)
    if form.is_valid():
        iteration = run_service(
            form,
            lambda: services.iteration_add(
                initiative=initiative, user=request.user, **form.cleaned_data
            ),
        )
        if iteration is not None:
            messages.success(request, f"Iteration {iteration.number} recorded.")
            return after_action(request, key, part="iterations", also=("gate-panel", "history"))
    return render_detail(
        request, initiative, part="iterations", status=refusal_status(form), iteration_form=form
    )


@login_required
@require_POST
def iteration_feedback(request: HtmxHttpRequest, key: str, number: int) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    iteration = get_object_or_404(initiative.iterations, number=number)
    form = FeedbackForm(request.POST)
    recorded = None
    if form.is_valid():
        recorded = run_service(
            form,
            lambda: services.iteration_record_feedback(
                iteration=iteration,
                business_feedback=form.cleaned_data["business_feedback"],
                user=request.user,
            ),
        )
    if recorded is not None:
        messages.success(request, f"Feedback on iteration {number} recorded.")
        return after_action(request, key, part="iterations", also=("gate-panel", "history"))
    return render_detail(
        request,
        initiative,
        part="iterations",
        status=refusal_status(form),
        feedback_form=form,
        feedback_for=number,
    )


@login_required
@require_POST
def kpi_add(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    form = KPIForm(request.POST)
    if form.is_valid():
        kpi = run_service(
            form,
            lambda: kpi_services.kpi_define(
                initiative=initiative, user=request.user, **form.cleaned_data
            ),
        )
        if kpi is not None:
            messages.success(request, f"KPI “{kpi.name}” defined.")
            return after_action(request, key, part="kpis", also=("gate-panel",))
    return render_detail(
        request, initiative, part="kpis", status=refusal_status(form), kpi_form=form
    )
