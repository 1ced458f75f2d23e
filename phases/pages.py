"""The gate panel, the decision form and the history timeline of the initiative page."""

from __future__ import annotations

from typing import Any

from bizdevops.htmx import HtmxHttpRequest
from initiatives.models import Initiative
from initiatives.pages import initiative_page
from phases import selectors
from phases.forms import DecisionForm


@initiative_page.contributes
def gate_and_history(
    request: HtmxHttpRequest, initiative: Initiative, forms: dict[str, Any]
) -> dict[str, Any]:
    panel = selectors.gate_panel(initiative, request.user)
    return {
        "panel": panel,
        "history": selectors.timeline(initiative),
        "decision_form": forms.get("decision_form") or DecisionForm(decisions=panel.decisions),
        "refused": forms.get("refused", []),
        "tick_form": forms.get("tick_form"),
        "tick_for": forms.get("tick_for"),
        "ask_form": forms.get("ask_form"),
        "ask_for": forms.get("ask_for"),
    }
