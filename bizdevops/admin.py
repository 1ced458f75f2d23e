from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from bizdevops import outbox
from bizdevops.admin_forms import ReadOnlyAdmin
from bizdevops.models import OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    """Work written but not yet taken by the broker: normally empty, or a few rows for a
    second. Old rows mean the broker is away (see last error) or no worker runs the sweep."""

    list_display = ["task", "args", "age", "available_at", "send_failures", "last_error"]
    list_filter = ["task"]
    ordering = ["created_at", "id"]
    actions = ["send_now"]

    @admin.display(description="age", ordering="created_at")
    def age(self, message: OutboxMessage) -> str:
        return timesince(message.created_at, timezone.now())

    @admin.action(description="Send the selected messages now", permissions=["send"])
    def send_now(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        sent = outbox.send_now(ids)
        level = messages.SUCCESS if sent == len(ids) else messages.WARNING
        self.message_user(request, f"Sent {sent} of {len(ids)} messages.", level)

    def has_send_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)
