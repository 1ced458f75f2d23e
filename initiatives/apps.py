from __future__ import annotations

from django.apps import AppConfig


class InitiativesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "initiatives"
    verbose_name = "Initiatives"

    def ready(self) -> None:
        # The initiatives' provider of the global search (bizdevops/search.py).
        from initiatives import selectors  # noqa: F401
