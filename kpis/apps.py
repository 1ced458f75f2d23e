from __future__ import annotations

from django.apps import AppConfig


class KpisConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "kpis"
    verbose_name = "KPIs"

    def ready(self) -> None:
        # The KPI gate criterion, the KPIs on the initiative page and the board cards' health.
        from kpis import checks, pages, selectors  # noqa: F401
