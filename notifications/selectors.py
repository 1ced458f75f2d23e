"""Reads of alerts: a user sees the alerts sent to them, and no others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from notifications.models import Alert

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

RECENT = 50


def alerts_for(user: User | AnonymousUser) -> QuerySet[Alert]:
    """The alerts sent to the user, newest first."""
    if not user.is_authenticated:
        return Alert.objects.none()
    return (
        Alert.objects.filter(recipients=user.pk)
        .select_related("sent_by")  # requests name their sender
        .order_by("-created_at", "-id")
    )
