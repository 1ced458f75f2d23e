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

    def __init__(self, *args: Any, decisions: list[Decision] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if decisions is not None:
            self.fields["decision"].choices = [(d.value, d.label) for d in decisions]  # type: ignore[attr-defined]


class TickForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000)
    evidence_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
