from __future__ import annotations

from typing import Any

from django.contrib import admin, messages

from bizdevops.admin_forms import ReadOnlyAdmin, ServiceAdmin, ServiceForm
from initiatives.admin import ScopedToInitiatives
from kpis import partitions, services
from kpis.models import KPI, Measurement


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
class KPIAdmin(ScopedToInitiatives, ServiceAdmin):
    form = KPIForm
    list_display = ["name", "initiative", "unit", "direction", "target"]
    list_select_related = ["initiative"]
    list_filter = ["direction", ("initiative__business_unit", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "description", "initiative__title"]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        return ["initiative"] if obj is not None else []


@admin.register(Measurement)
class MeasurementAdmin(ScopedToInitiatives, ReadOnlyAdmin):
    initiative_path = "kpi__initiative__"
    list_display = ["kpi", "as_of", "value", "origin", "recorded_at"]
    list_select_related = ["kpi__initiative"]
    list_filter = ["origin", ("kpi__initiative__business_unit", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["kpi__name", "kpi__initiative__title"]
    date_hierarchy = "as_of"
    show_full_result_count = False

    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        # Months the app's role could not give a partition (kpis/partitions.py): said where an
        # operator looks at measurements.
        for problem in partitions.partitions_problems():
            messages.warning(request, problem)
        return super().changelist_view(request, extra_context)
