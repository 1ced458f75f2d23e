from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from kpis.models import MAX_DECIMALS, Direction


class KPIForm(forms.Form):
    name = forms.CharField(max_length=120)
    unit = forms.CharField(max_length=30, required=False, help_text="e.g. %, EUR, h")
    direction = forms.ChoiceField(choices=Direction.choices, initial=Direction.HIGHER)
    target = forms.FloatField(required=False)
    warning_threshold = forms.FloatField(required=False, label="Warning at")
    critical_threshold = forms.FloatField(required=False, label="Critical at")
    decimals = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_DECIMALS,
        help_text="Digits shown after the decimal point; empty: from the unit (% and h: 1).",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ChartRangeForm(forms.Form):
    """A custom range of the trend charts: two dates, both days included (`?range=custom&
    from=2026-11-01&to=2026-11-30`)."""

    from_ = forms.DateField(label="From")
    to = forms.DateField(label="To")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `from` is a Python keyword: the field is named from_ and sent as `from`.
        self.fields["from"] = self.fields.pop("from_")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("from"), data.get("to")
        if start is not None and end is not None:
            if start >= end:
                self.add_error("to", "The end date must be after the start date.")
            elif start < dt.date(1970, 1, 1):
                self.add_error("from", "The start date must be 1970-01-01 or later.")
        return data
