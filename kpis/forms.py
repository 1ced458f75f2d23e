from __future__ import annotations

from typing import Any

from django import forms

from kpis.models import DataSource, Direction, ScheduleKind, SourceKind
from kpis.sources import CALCULATIONS


class KPIForm(forms.Form):
    name = forms.CharField(max_length=120)
    unit = forms.CharField(max_length=30, required=False, help_text="e.g. %, EUR, h")
    direction = forms.ChoiceField(choices=Direction.choices, initial=Direction.HIGHER)
    target = forms.FloatField(required=False)
    warning_threshold = forms.FloatField(required=False, label="Warning at")
    critical_threshold = forms.FloatField(required=False, label="Critical at")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class JobForm(forms.Form):
    schedule_kind = forms.ChoiceField(
        label="Schedule",
        choices=ScheduleKind.choices,
        widget=forms.RadioSelect,
        initial=ScheduleKind.CRON,
    )
    cron = forms.CharField(
        required=False,
        max_length=100,
        help_text="Five fields: minute hour day month weekday, e.g. */15 * * * *.",
    )
    interval_seconds = forms.IntegerField(
        required=False, label="Interval (seconds)", min_value=10, help_text="At least 10 seconds."
    )
    source_kind = forms.ChoiceField(
        label="Source",
        choices=SourceKind.choices,
        widget=forms.RadioSelect,
        initial=SourceKind.SQL,
    )
    data_source = forms.ModelChoiceField(queryset=DataSource.objects.all(), required=False)
    sql = forms.CharField(
        required=False,
        label="SQL query",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "mono"}),
        help_text="One SELECT returning exactly one number; it runs read-only.",
    )
    http_path = forms.CharField(
        required=False, max_length=500, label="HTTP path", help_text="Appended to the base URL."
    )
    json_path = forms.CharField(
        required=False, max_length=200, label="JSON path", help_text="e.g. $.data.total"
    )
    calculation = forms.ChoiceField(required=False, choices=())
    timeout_seconds = forms.IntegerField(
        label="Timeout (seconds)", min_value=1, max_value=3600, initial=30
    )
    max_retries = forms.IntegerField(label="Retries", min_value=0, max_value=10, initial=2)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["calculation"].choices = [("", "—")] + [  # type: ignore[attr-defined]
            (c.name, c.label) for c in sorted(CALCULATIONS.values(), key=lambda c: c.label)
        ]

    @classmethod
    def initial_for(cls, job: Any) -> dict[str, Any]:
        return {name: getattr(job, name) for name in cls.base_fields}
