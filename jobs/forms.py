from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from jobs.models import (
    INTERVAL_MAX_SECONDS,
    INTERVAL_MIN_SECONDS,
    RETRIES_DEFAULT,
    RETRIES_MAX,
    TIMEOUT_DEFAULT_SECONDS,
    TIMEOUT_MAX_SECONDS,
    TIMEOUT_MIN_SECONDS,
    DataSource,
    DataSourceKind,
    RunState,
    ScheduleKind,
    SourceKind,
    Trigger,
)
from jobs.sources import CALCULATIONS


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
        required=False,
        label="Interval (seconds)",
        min_value=INTERVAL_MIN_SECONDS,
        max_value=INTERVAL_MAX_SECONDS,
        help_text=f"At least {INTERVAL_MIN_SECONDS} seconds.",
    )
    source_kind = forms.ChoiceField(
        label="Source",
        choices=SourceKind.choices,
        widget=forms.RadioSelect,
        initial=SourceKind.SQL,
    )
    data_source = forms.ModelChoiceField(queryset=DataSource.objects.none(), required=False)
    sql = forms.CharField(
        required=False,
        label="SQL query",
        # data-sql-editor: static/js/sql-editor.js puts a CodeMirror editor over it.
        widget=forms.Textarea(
            attrs={
                "rows": 6,
                "spellcheck": "false",
                "class": "mono",
                "data-sql-editor": "",
                "placeholder": "SELECT count(*) FROM orders",
            }
        ),
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
        label="Timeout (seconds)",
        min_value=TIMEOUT_MIN_SECONDS,
        max_value=TIMEOUT_MAX_SECONDS,
        initial=TIMEOUT_DEFAULT_SECONDS,
    )
    max_retries = forms.IntegerField(
        label="Retries", min_value=0, max_value=RETRIES_MAX, initial=RETRIES_DEFAULT
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(
        self, *args: Any, data_sources: QuerySet[DataSource] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if data_sources is not None:
            self.fields["data_source"].queryset = data_sources  # type: ignore[attr-defined]
            if not self.is_bound and not self.initial.get("data_source"):
                self._preselect(data_sources)
        self.fields["calculation"].choices = [("", "—")] + [  # type: ignore[attr-defined]
            (c.name, c.label) for c in sorted(CALCULATIONS.values(), key=lambda c: c.label)
        ]

    def _preselect(self, data_sources: QuerySet[DataSource]) -> None:
        """The only data source is chosen already (or the only database one: SQL is the
        source a new job starts with)."""
        choices = list(data_sources.values_list("pk", "kind")[:100])
        databases = [pk for pk, kind in choices if kind == DataSourceKind.DATABASE]
        if len(choices) == 1:
            self.initial["data_source"] = choices[0][0]
        elif len(databases) == 1:
            self.initial["data_source"] = databases[0]

    @classmethod
    def initial_for(cls, job: Any) -> dict[str, Any]:
        return {name: getattr(job, name) for name in cls.base_fields}


ANY = [("", "any")]


class RunFilterForm(forms.Form):
    """The filters of a job's run history (in the URL: ?state=failed&trigger=trial)."""

    state = forms.ChoiceField(required=False, choices=ANY + list(RunState.choices))
    trigger = forms.ChoiceField(required=False, choices=ANY + list(Trigger.choices))

    def filters(self) -> dict[str, str]:
        """The valid filters; an unknown value filters nothing (and says so on the form)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: self.cleaned_data.get(name) or "" for name in self.fields}
