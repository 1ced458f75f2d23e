from __future__ import annotations

from django.apps import AppConfig


class PhasesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "phases"
    verbose_name = "Phases and gates"

    def ready(self) -> None:
        # The built-in gate checks, and the gate panel and history on the initiative page.
        from phases import checks, pages  # noqa: F401
