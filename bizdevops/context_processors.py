from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from bizdevops.roles import is_admin, role_names
from initiatives.permissions import can_create_initiative


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the navigation shows depends on the user's roles."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    roles = sorted(role_names(user)) + (["Admin"] if is_admin(user) else [])
    match = getattr(request, "resolver_match", None)
    names = {
        "home": "home",
        "board": "board",
        "archive": "archive",
        "initiative-create": "create",
        "ops": "ops",
        "dashboards": "dashboards",
        "alerts": "alerts",
        "unit-dashboard": "dashboards",
    }
    return {
        "can_create_initiative": can_create_initiative(user),
        "user_roles": roles,
        "nav": names.get(match.url_name if match else "", ""),
    }
