from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from bizdevops.admin_forms import ReadOnlyAdmin, ServiceAdmin, ServiceForm
from initiatives.admin import ScopedToInitiatives
from jobs import services
from jobs.models import DataSource, Job, Run


class DataSourceForm(ServiceForm):
    url = forms.CharField(
        required=False,
        label="URL",
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: stored encrypted, never shown again. Leave empty to keep it.",
    )

    class Meta:
        model = DataSource
        fields = ["name", "kind", "url", "url_env", "allow_private_addresses", "description"]

    def perform(self, data: dict[str, Any]) -> DataSource:
        return services.data_source_save(
            user=self.user,
            source=self.instance if self.instance.pk else None,
            name=data["name"],
            kind=data["kind"],
            url=data.get("url", ""),
            url_env=data.get("url_env", ""),
            allow_private_addresses=data.get("allow_private_addresses", False),
            description=data.get("description", ""),
        )


@admin.register(DataSource)
class DataSourceAdmin(ServiceAdmin):
    form = DataSourceForm
    list_display = ["name", "kind", "display_url", "allow_private_addresses"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    readonly_fields = ["display_url"]


@admin.register(Job)
class JobAdmin(ScopedToInitiatives, ReadOnlyAdmin):
    initiative_path = "kpi__initiative__"
    """Jobs are registered and edited by engineers on the Ops page (through the services);
    the admin reads them."""

    list_display = ["kpi", "schedule_display", "source_kind", "enabled", "next_run_at"]
    list_select_related = ["kpi", "kpi__initiative"]
    list_filter = ["enabled", "source_kind", "schedule_kind"]
    search_fields = ["kpi__name", "kpi__initiative__title", "sql", "calculation"]


@admin.register(Run)
class RunAdmin(ScopedToInitiatives, ReadOnlyAdmin):
    initiative_path = "job__kpi__initiative__"
    list_display = ["pk", "job", "scheduled_for", "trigger", "state", "attempt", "value", "worker"]
    list_select_related = ["job__kpi__initiative"]
    list_filter = ["state", "trigger", "scheduled_for"]
    search_fields = ["job__kpi__name", "error", "worker"]
    date_hierarchy = "scheduled_for"
