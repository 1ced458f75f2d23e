from __future__ import annotations

from django.apps import AppConfig


class KpisConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "kpis"
    verbose_name = "KPIs"

    def ready(self) -> None:
        from kpis import calculations, checks  # noqa: F401  (registers checks, calculations)
