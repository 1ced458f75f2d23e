"""Gate actions on the initiative page: tick / untick a criterion, ask an engineer to meet
one, record a decision."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.views.decorators.http import require_POST

from bizdevops.htmx import HtmxHttpRequest
from bizdevops.web import refusal_status, run_service
from initiatives.pages import initiative_page
from initiatives.people import person_name
from initiatives.selectors import initiative_get
from phases import permissions, rules, selectors, services
from phases.forms import AskForm, DecisionForm, TickForm, final_unconfirmed
from phases.models import Decision


@login_required
@require_POST
def criterion_tick(request: HtmxHttpRequest, key: str, code: str) -> HttpResponse:
    initiative = initiative_get(key, request.user)
    criterion = selectors.criterion_get(code)
    form = TickForm(request.POST)
    untick = request.POST.get("action") == "untick"
    if form.is_valid():
        if untick:
            done = run_service(
                form,
                lambda: services.criterion_untick(
                    initiative=initiative,
                    criterion=criterion,
                    user=request.user,
                    reason=form.cleaned_data["note"] or "Unticked",
                ),
            )
        else:
            done = run_service(
                form,
                lambda: services.criterion_tick(
                    initiative=initiative,
                    criterion=criterion,
                    user=request.user,
                    **form.cleaned_data,
                ),
            )
        if done is not None or (untick and not form.errors):
            verb = "Unticked" if untick else "Ticked"
            messages.success(request, f"{verb}: {criterion.title}.")
            return initiative_page.after_action(request, key, part="gate-panel", also=("history",))
    return initiative_page.render(
        request,
        initiative,
        part="gate-panel",
        status=refusal_status(form),
        tick_form=form,
        tick_for=criterion.code,
    )


@login_required
@require_POST
def decide(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = initiative_get(key, request.user)
    permissions.can_decide.check(request.user, initiative)
    form = DecisionForm(request.POST)
    refused: list[object] = []
    if form.is_valid() and final_unconfirmed(form):
        kind = Decision(form.cleaned_data["decision"])
        # Only when the decision could be recorded: otherwise the service's refusal (a
        # closed initiative, a phase without it) says more than a missing tick.
        if kind in rules.available_decisions(initiative):
            form.add_error(
                "confirm_final",
                f"{kind.label} is final: tick “I understand that kill and retire are final” "
                "to record it.",
            )
    if form.is_valid():
        record = run_service(
            form,
            lambda: services.gate_decide(
                initiative=initiative,
                decision=form.cleaned_data["decision"],
                rationale=form.cleaned_data["rationale"],
                user=request.user,
                from_phase=form.cleaned_data["from_phase"],
            ),
        )
        refusal = getattr(form, "refusal", None)
        if isinstance(refusal, services.GateError):
            refused = list(refusal.unmet)
        if record is not None:
            messages.success(
                request,
                f"{Decision(record.decision).label} recorded: {initiative.key} is now "
                f"{record.get_to_phase_display()} / {record.get_to_status_display().lower()}.",
            )
            return initiative_page.after_action(request, key, part="gate-panel", reload=True)
    return initiative_page.render(
        request,
        initiative,
        part="gate-panel",
        status=refusal_status(form),
        decision_form=form,
        refused=refused,
    )


@login_required
@require_POST
def criterion_ask(request: HtmxHttpRequest, key: str, code: str) -> HttpResponse:
    """The accountable PM asks an engineer to do what an unmet criterion needs (the gate
    panel's "Ask" next to each step)."""
    initiative = initiative_get(key, request.user)
    permissions.can_ask.check(request.user, initiative)
    criterion = selectors.criterion_get(code)
    form = AskForm(request.POST)
    if form.is_valid():
        engineer = (
            get_user_model()
            .objects.filter(pk=form.cleaned_data["engineer"], is_active=True)
            .first()
        )
        if engineer is None:
            form.add_error("engineer", "No such person.")
        else:
            sent = run_service(
                form,
                lambda: services.engineer_ask(
                    initiative=initiative,
                    criterion=criterion,
                    engineer=engineer,
                    about=form.cleaned_data["about"],
                    user=request.user,
                ),
            )
            if sent is not None:
                messages.success(
                    request,
                    f"Asked {person_name(engineer)}: they see it in their alerts and get an "
                    "e-mail.",
                )
                return initiative_page.after_action(
                    request, key, part="gate-panel", also=("history",)
                )
    return initiative_page.render(
        request,
        initiative,
        part="gate-panel",
        status=refusal_status(form),
        ask_form=form,
        ask_for=criterion.code,
    )
