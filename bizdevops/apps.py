from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BizDevOpsConfig(AppConfig):
    """The project package as an app: its management commands (seed_demo, devserver,
    grant_runtime_role, flush), the outbox (its one model, OutboxMessage) with its sweep task,
    and the demo warehouse task. It grants the runtime database role after every migrate
    (bizdevops.history)."""

    name = "bizdevops"
    verbose_name = "BizDevOps"

    def ready(self) -> None:
        from bizdevops.history import grant_after_migrate

        post_migrate.connect(grant_after_migrate, dispatch_uid="bizdevops.grant_runtime_role")
