from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"
    verbose_name = "KPI jobs"

    def ready(self) -> None:
        # The named calculations, the jobs gate criterion and the staleness of KPI tiles.
        from jobs import calculations, checks, selectors  # noqa: F401
