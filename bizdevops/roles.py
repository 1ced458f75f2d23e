"""Roles are Django groups (created by a migration); admins are superusers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


class Role(models.TextChoices):
    PROGRAM_MANAGER = "Program manager"
    DATA_SCIENTIST = "Data scientist"
    DATA_ENGINEER = "Data engineer"
    DEVOPS_ENGINEER = "DevOps engineer"
    BUSINESS_STAKEHOLDER = "Business stakeholder"


def role_names(user: User | AnonymousUser) -> frozenset[str]:
    """The role names of a user, read once per user object and cached on it."""
    if not user.is_authenticated:
        return frozenset()
    cached: frozenset[str] | None = getattr(user, "_bizdevops_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._bizdevops_roles = cached  # type: ignore[attr-defined]
    return cached


def has_role(user: User | AnonymousUser, role: Role) -> bool:
    return role.value in role_names(user)


def is_admin(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and getattr(user, "is_superuser", False))
