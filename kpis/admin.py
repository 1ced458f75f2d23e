from __future__ import annotations

from typing import Any

from django.contrib import admin

from bizdevops.admin_forms import ServiceAdmin, ServiceForm
from kpis import services
from kpis.models import KPI


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
