"""The KPIs section of the initiative page."""

from __future__ import annotations

from typing import Any

from bizdevops.htmx import HtmxHttpRequest
from initiatives.models import Initiative
from initiatives.pages import initiative_page
from kpis import permissions
from kpis.forms import KPIForm


@initiative_page.contributes
def kpis_section(
    request: HtmxHttpRequest, initiative: Initiative, forms: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kpis": list(initiative.kpis.all()),
        "can_define_kpi": not initiative.is_final
        and permissions.can_define_kpi(request.user, initiative),
        "kpi_form": forms.get("kpi_form") or KPIForm(),
    }
