"""The initiative page: one screen (`initiatives/initiative_detail.html`) whose sections
come from several apps. This app contributes the story, the team, the handover form and the
iterations; `phases` adds the gate panel and the history, `kpis` the KPIs (each from its
`AppConfig.ready`)."""

from __future__ import annotations

from typing import Any

from bizdevops.htmx import HtmxHttpRequest, Page
from initiatives import permissions, selectors
from initiatives.forms import HandoverForm, IterationForm, MemberForm
from initiatives.models import Initiative, Phase
from initiatives.services import STORY_FIELDS

STORY_LABELS = {
    "business_problem": "Business problem",
    "business_requirements": "Business requirements",
    "use_case": "Use case",
    "algorithm_translation": "Algorithm translation",
    "data_feasibility": "Data feasibility",
}

initiative_page = Page(
    template="initiatives/initiative_detail.html",
    url_name="initiative-detail",
    lookup=selectors.initiative_get,
)


@initiative_page.contributes
def story_and_team(
    request: HtmxHttpRequest, initiative: Initiative, forms: dict[str, Any]
) -> dict[str, Any]:
    user = request.user
    is_open = not initiative.is_final
    handover_form = forms.get("handover_form") or HandoverForm(initiative=initiative)
    if forms.get("handover_open") and not handover_form.is_bound:
        handover_form.fields["to"].widget.attrs["autofocus"] = True
    return {
        "initiative": initiative,
        "phases": Phase.choices,
        "can_manage": is_open and permissions.can_edit(user, initiative),
        "can_record_iteration": is_open and permissions.can_record_iteration(user, initiative),
        "can_give_feedback": is_open and permissions.can_give_feedback(user, initiative),
        "team": selectors.team(initiative),
        "iterations": selectors.iterations(initiative),
        "member_form": forms.get("member_form") or MemberForm(initiative=initiative),
        "handover_form": handover_form,
        # The handover page (GET of its URL): the page with the form open and focused.
        "handover_open": bool(forms.get("handover_open")),
        "story_fields": [
            (field, STORY_LABELS[field], getattr(initiative, field)) for field in STORY_FIELDS
        ],
        "iteration_form": forms.get("iteration_form") or IterationForm(),
        "feedback_form": forms.get("feedback_form"),
        "feedback_for": forms.get("feedback_for"),
    }
