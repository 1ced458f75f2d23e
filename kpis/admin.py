from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from bizdevops.admin_forms import ReadOnlyAdmin, ServiceAdmin, ServiceForm
from kpis import services
from kpis.models import KPI, DataSource, Job, Measurement, Run


class KPIForm(ServiceForm):
    class Meta:
        model = KPI
        fields = ["initiative", *services.KPI_FIELDS]

    def perform(self, data: dict[str, Any]) -> KPI:
        values = {field: data.get(field) for field in services.KPI_FIELDS}
        for text in ("unit", "description"):
            values[text] = values[text] or ""
        if self.instance.pk:
            return services.kpi_update(kpi=self.instance, user=self.user, **values)
        return services.kpi_define(initiative=data["initiative"], user=self.user, **values)


@admin.register(KPI)
class KPIAdmin(ServiceAdmin):
    form = KPIForm
    list_display = ["name", "initiative", "unit", "direction", "target"]
    list_select_related = ["initiative"]
    list_filter = ["direction", "initiative__business_unit"]
    search_fields = ["name", "description", "initiative__title"]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        return ["initiative"] if obj is not None else []


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
class JobAdmin(ReadOnlyAdmin):
    """Jobs are registered and edited by engineers on the Ops page (through the services);
    the admin reads them."""

    list_display = ["kpi", "schedule_display", "source_kind", "enabled", "next_run_at"]
    list_select_related = ["kpi", "kpi__initiative"]
    list_filter = ["enabled", "source_kind", "schedule_kind"]
    search_fields = ["kpi__name", "kpi__initiative__title", "sql", "calculation"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "job", "scheduled_for", "trigger", "state", "attempt", "value", "worker"]
    list_select_related = ["job__kpi__initiative"]
    list_filter = ["state", "trigger", "scheduled_for"]
    search_fields = ["job__kpi__name", "error", "worker"]
    date_hierarchy = "scheduled_for"


@admin.register(Measurement)
class MeasurementAdmin(ReadOnlyAdmin):
    list_display = ["kpi", "as_of", "value", "origin", "recorded_at"]
    list_select_related = ["kpi__initiative"]
    list_filter = ["origin", "kpi__initiative__business_unit"]
    search_fields = ["kpi__name", "kpi__initiative__title"]
    date_hierarchy = "as_of"
    show_full_result_count = False
