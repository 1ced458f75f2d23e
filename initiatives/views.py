"""Pages for initiatives: start page, board, archive, create / edit, the initiative page and
its team, handover and iteration actions. Every write is a service call; every read goes
through the selectors' access doors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST, require_safe

from bizdevops.htmx import HtmxHttpRequest, partial_wanted, vary_on_htmx
from bizdevops.permissions import Rule
from bizdevops.web import refusal_status, require_get_or_post, run_service
from initiatives import permissions, selectors, services
from initiatives.filters import ArchiveFilter, InitiativeFilter
from initiatives.forms import FeedbackForm, HandoverForm, InitiativeForm, IterationForm, MemberForm
from initiatives.models import Initiative, Phase, Status
from initiatives.pages import initiative_page
from initiatives.people import person_name
from initiatives.templatetags.ui import around_key, timebox_context

# The person picker of the team form on the initiative page (the link after creating).
TEAM_FORM_ANCHOR = "team-person"


def _offered(rule: Rule, request: HtmxHttpRequest, initiative: Initiative) -> None:
    """A form page of a rule's action: refused (403) to those the rule refuses, and on a
    closed initiative, where the page offers no action at all."""
    rule.check(request.user, initiative)
    if initiative.is_final:
        raise PermissionDenied(rule.refusal_for(initiative))


def _show(columns: list[selectors.Column]) -> None:
    """What each card of the columns shows, worked out here once per card: the template
    then only looks values up (an include, tags and filters per card took 16 ms of a 41 ms
    board of 150 cards; 7 ms now)."""
    detail, kpis = around_key("initiative-detail"), around_key("initiative-kpis")
    statuses = dict(Status.choices)  # `get_status_display` builds this dict card by card
    due_texts: dict[dt.date, str] = {}
    for column in columns:
        column.shown = []
        for card in column.cards:
            key = card.key
            health: Any = getattr(card, "kpi_health", None)  # a kpis Health, by its decorator
            known = bool(health) and health != "unknown"
            column.shown.append(
                {
                    "key": key,
                    "url": f"{detail[0]}{key}{detail[1]}",
                    "kpis_url": f"{kpis[0]}{key}{kpis[1]}",
                    "title": card.title,
                    "unit": card.business_unit_name,
                    "accountable": card.accountable_name,
                    "status": card.status,
                    "status_label": statuses.get(card.status, card.status),
                    "timebox": (
                        timebox_context(card, due_texts) if card.phase == Phase.DEV else None
                    ),
                    "health": str(health) if known else "",
                    "health_label": health.label if known else "",
                    # As text: the template would localize a number, card by card.
                    "kpi_count": str(card.kpi_count),
                }
            )


@login_required
@require_safe
def home(request: HtmxHttpRequest) -> HttpResponse:
    # A business stakeholder starts on the answers they came for: the KPI overview (their
    # own initiatives stay one link away, `?mine=1`).
    if permissions.sees_own_units(request.user) and "mine" not in request.GET:
        return redirect("kpi-overview")
    initiatives = selectors.my_initiatives(request.user)
    columns = selectors.by_phase(initiatives)
    _show(columns)
    count = sum(column.total for column in columns)
    return render(request, "initiatives/home.html", {"columns": columns, "count": count})


def _board_filter(request: HtmxHttpRequest) -> InitiativeFilter:
    return InitiativeFilter(
        request.GET or None,
        queryset=selectors.open_initiatives_visible_to(request.user),
        request=request,
    )


def _page_param(phase: str) -> str:
    """The board's query parameter for the page a column shows (`page_dev=3`)."""
    return f"page_{phase}"


def _board_url(name: str, request: HtmxHttpRequest, anchor: str = "", **extra: str | int) -> str:
    """The URL `name` with the board's filters from the request (and nothing else it was
    sent), the `extra` parameters (leaving out pages 1) and an anchor."""
    query = QueryDict(mutable=True)
    for field in InitiativeFilter.base_filters:
        values = [v for v in request.GET.getlist(field) if v]
        if values:
            query.setlist(field, values)
    for param, value in extra.items():
        if value != 1:
            query[param] = str(value)
    encoded = query.urlencode()
    return f"{reverse(name)}{'?' if encoded else ''}{encoded}{anchor}"


def _link(columns: list[selectors.Column], request: HtmxHttpRequest) -> None:
    """Where each column's "show more" leads: the next page through htmx, the whole board
    at that page without JavaScript (the other columns staying where they are)."""
    pages = {_page_param(c.phase): c.page for c in columns}
    for column in columns:
        param, anchor = _page_param(column.phase), f"#column-{column.phase}"
        if column.more:
            next_pages = {**pages, param: column.next_page}
            column.more_url = _board_url("board", request, anchor, **next_pages)
            column.more_hx_url = _board_url(
                "board-column", request, column=column.phase, page=column.next_page
            )
        if column.page > 1:
            column.first_url = _board_url("board", request, anchor, **{**pages, param: 1})


@login_required
@require_safe
@vary_on_htmx
def board(request: HtmxHttpRequest) -> HttpResponse:
    filters = _board_filter(request)
    pages = {phase: selectors.page_number(request.GET.get(_page_param(phase))) for phase in Phase}
    columns = selectors.board_columns(filters.qs, pages=pages)
    _link(columns, request)
    _show(columns)
    context = {
        "filter": filters,
        "columns": columns,
        "count": sum(column.total for column in columns),
    }
    template = (
        "initiatives/board.html#board" if partial_wanted(request) else "initiatives/board.html"
    )
    return render(request, template, context)


@login_required
@require_safe
@vary_on_htmx
def board_column(request: HtmxHttpRequest) -> HttpResponse:
    """The next page of one board column (`?column=dev&page=2` and the filters), for its
    "show more": the cards and the next "show more". Without htmx, the whole board at that
    page."""
    phase = request.GET.get("column", "")
    page = selectors.page_number(request.GET.get("page"))
    if not partial_wanted(request):
        if phase not in Phase.values:
            return redirect(_board_url("board", request))
        return redirect(
            _board_url("board", request, f"#column-{phase}", **{_page_param(phase): page})
        )
    if phase not in Phase.values:
        raise Http404("No such board column.")
    filters = _board_filter(request)
    column_phase = Phase(phase)
    (column,) = selectors.board_columns(
        filters.qs, pages={column_phase: page}, phases=[column_phase]
    )
    if column.page != page:
        return HttpResponse("")  # past the end (the column shrank): nothing more to show
    _link([column], request)
    _show([column])
    context = {"column": column, "autofocus": True}
    return render(request, "initiatives/_columns.html#column-page", context)


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
            # The next step is the team (the Biz → Dev gate needs a data engineer and a data
            # scientist): the message links to its form, which the link focuses.
            messages.success(
                request,
                format_html(
                    '{} created. Next: <a href="#{}">staff its team</a> '
                    "(the Biz → Dev gate needs a data engineer and a data scientist).",
                    initiative.key,
                    TEAM_FORM_ANCHOR,
                ),
            )
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
    # `?focus=use_case`: the link of an empty story field on the initiative page.
    focus = request.GET.get("focus", "")
    if request.method != "POST" and focus in form.fields:
        form.fields[focus].widget.attrs["autofocus"] = True
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
    form = MemberForm(request.POST, initiative=initiative)
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
                request, f"{person_name(member)} joined as {added.get_role_display().lower()}."
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
    messages.success(request, f"{person_name(membership.user)} left the team.")
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
            messages.success(request, f"{person_name(to)} is now accountable for {key}.")
            return initiative_page.after_action(request, key, part="team", reload=True)
    status = refusal_status(form) if request.method == "POST" else 200
    return initiative_page.render(
        request, initiative, part="handover", status=status, handover_form=form, handover_open=True
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
