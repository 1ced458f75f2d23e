from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from bizdevops.demo.seed import DEMO_PASSWORD, DEMO_USERS, seed


class Command(BaseCommand):
    help = "Load demo users, business units and initiatives (DEBUG only; safe to run twice)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates users with a known password; it runs only with DEBUG on."
            )
        log: list[str] = []
        with transaction.atomic():
            seed(log)
        for line in log:
            self.stdout.write(f"  created {line}")
        if not log:
            self.stdout.write("Demo data is complete; nothing to add.")
        names = ", ".join(username for username, *_ in DEMO_USERS)
        self.stdout.write(self.style.SUCCESS(f"Demo logins: {names} (password: {DEMO_PASSWORD!r})"))
