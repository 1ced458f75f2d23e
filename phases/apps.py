from __future__ import annotations

from django.apps import AppConfig


class PhasesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "phases"
    verbose_name = "Phases and gates"

    def ready(self) -> None:
        from phases import checks  # noqa: F401  (registers the built-in checks)
