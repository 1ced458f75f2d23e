from __future__ import annotations

from django.apps import AppConfig


class BizDevOpsConfig(AppConfig):
    """The project package as an app: its management commands (seed_demo, devserver) and
    the demo warehouse task. It has no models."""

    name = "bizdevops"
    verbose_name = "BizDevOps"
