"""Pages for initiatives: start page, board, archive, create / edit, the initiative page and
its team, handover and iteration actions. Every write is a service call; every read goes
through the selectors' access doors."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from bizdevops.htmx import HtmxHttpRequest, partial_wanted, vary_on_htmx
from bizdevops.permissions import Rule
from bizdevops.web import refusal_status, require_get_or_post, run_service
from initiatives import permissions, selectors, services
from initiatives.filters import ArchiveFilter, InitiativeFilter
from initiatives.forms import FeedbackForm, HandoverForm, InitiativeForm, IterationForm, MemberForm
from initiatives.models import Initiative
from initiatives.pages import initiative_page


def _offered(rule: Rule, request: HtmxHttpRequest, initiative: Initiative) -> None:
    """A form page of a rule's action: refused (403) to those the rule refuses, and on a
    closed initiative, where the page offers no action at all."""
    rule.check(request.user, initiative)
    if initiative.is_final:
        raise PermissionDenied(rule.refusal_for(initiative))


@login_required
@require_safe
def home(request: HtmxHttpRequest) -> HttpResponse:
    initiatives = selectors.my_initiatives(request.user)
    columns = selectors.by_phase(initiatives)
    count = sum(len(cards) for _, cards in columns)
    return render(request, "initiatives/home.html", {"columns": columns, "count": count})


@login_required
@require_safe
@vary_on_htmx
def board(request: HtmxHttpRequest) -> HttpResponse:
    filters = InitiativeFilter(
        request.GET or None,
        queryset=selectors.open_initiatives_visible_to(request.user),
        request=request,
    )
    columns = selectors.by_phase(filters.qs)
    context = {
        "filter": filters,
        "columns": columns,
        "count": sum(len(cards) for _, cards in columns),
    }
    template = (
        "initiatives/board.html#board" if partial_wanted(request) else "initiatives/board.html"
    )
    return render(request, template, context)


@login_required
@require_safe
@vary_on_htmx
def archive(request: HtmxHttpRequest) -> HttpResponse:
    filters = ArchiveFilter(
        request.GET or None,
        queryset=selectors.closed_initiatives_visible_to(request.user),
        request=request,
    )
    context = {"filter": filters, "initiatives": list(filters.qs)}
    template = (
        "initiatives/archive.html#archive"
        if partial_wanted(request)
        else "initiatives/archive.html"
    )
    return render(request, template, context)


@login_required
@require_get_or_post
def initiative_create(request: HtmxHttpRequest) -> HttpResponse:
    permissions.can_create_initiative.check(request.user)
    form = InitiativeForm(
        request.POST or None,
        may_name_accountable=permissions.can_name_accountable(request.user),
        units=selectors.business_units_visible_to(request.user),
    )
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
@require_get_or_post
def initiative_edit(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    _offered(permissions.can_edit, request, initiative)
    form = InitiativeForm(
        request.POST or None,
        initial=InitiativeForm.initial_for(initiative),
        units=selectors.business_units_visible_to(request.user),
    )
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


@login_required
@require_safe
def initiative_detail(request: HtmxHttpRequest, key: str) -> HttpResponse:
    return initiative_page.render(request, selectors.initiative_get(key, request.user))


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
            return initiative_page.after_action(
                request, key, part="team", also=("gate-panel", "history")
            )
    return initiative_page.render(
        request, initiative, part="team", status=refusal_status(form), member_form=form
    )


@login_required
@require_POST
def member_remove(request: HtmxHttpRequest, key: str, membership_id: int) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    membership = selectors.member_get(initiative, membership_id)
    services.member_remove(membership=membership, user=request.user)
    messages.success(request, f"{membership.user.get_username()} left the team.")
    return initiative_page.after_action(request, key, part="team", also=("gate-panel", "history"))


@login_required
@require_get_or_post
def hand_over(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    _offered(permissions.can_hand_over, request, initiative)
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
            return initiative_page.after_action(request, key, part="team", reload=True)
    status = refusal_status(form) if request.method == "POST" else 200
    return initiative_page.render(
        request, initiative, part="handover", status=status, handover_form=form
    )


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
            return initiative_page.after_action(
                request, key, part="iterations", also=("gate-panel", "history")
            )
    return initiative_page.render(
        request, initiative, part="iterations", status=refusal_status(form), iteration_form=form
    )


@login_required
@require_POST
def iteration_feedback(request: HtmxHttpRequest, key: str, number: int) -> HttpResponse:
    initiative = selectors.initiative_get(key, request.user)
    iteration = selectors.iteration_get(initiative, number)
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
        return initiative_page.after_action(
            request, key, part="iterations", also=("gate-panel", "history")
        )
    return initiative_page.render(
        request,
        initiative,
        part="iterations",
        status=refusal_status(form),
        feedback_form=form,
        feedback_for=number,
    )
