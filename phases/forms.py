from __future__ import annotations

from typing import Any

from django import forms

from phases.models import Decision


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect)
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why: it is stored with the decision and shown in the history.",
    )
    # The phase the page showed: a decision someone made meanwhile makes this one stale.
    from_phase = forms.CharField(required=False, widget=forms.HiddenInput)
    # Kill and retire are final: the page asks for this (the API does not: a client that
    # sends one means it, and the rationale is required anyway).
    confirm_final = forms.BooleanField(
        required=False,
        label="I understand that kill and retire are final",
        help_text="Needed for kill and retire: the initiative cannot be reopened.",
    )

    def __init__(self, *args: Any, decisions: list[Decision] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if decisions is not None:
            self.fields["decision"].choices = [(d.value, d.label) for d in decisions]  # type: ignore[attr-defined]


class TickForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000)
    evidence_url = forms.URLField(required=False, max_length=500, assume_scheme="https")


FINAL_DECISIONS = frozenset({Decision.KILL, Decision.RETIRE})


def final_unconfirmed(form: DecisionForm) -> bool:
    """A valid kill or retire without the confirmation (the view refuses it on the field,
    unless the service would refuse it anyway)."""
    return form.cleaned_data.get("decision") in FINAL_DECISIONS and not form.cleaned_data.get(
        "confirm_final"
    )


class AskForm(forms.Form):
    """The accountable PM asks an engineer (`engineer`, a user id) about one step of an unmet
    criterion (`about`, the id of its object: a KPI)."""

    engineer = forms.IntegerField(min_value=1)
    about = forms.IntegerField(min_value=1)
