from __future__ import annotations

from django import forms

from kpis.models import Direction


class KPIForm(forms.Form):
    name = forms.CharField(max_length=120)
    unit = forms.CharField(max_length=30, required=False, help_text="e.g. %, EUR, h")
    direction = forms.ChoiceField(choices=Direction.choices, initial=Direction.HIGHER)
    target = forms.FloatField(required=False)
    warning_threshold = forms.FloatField(required=False, label="Warning at")
    critical_threshold = forms.FloatField(required=False, label="Critical at")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
