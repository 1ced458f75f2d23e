from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from bizdevops.roles import Role, is_admin, role_names
from initiatives.permissions import can_create_initiative

# The roles that build against the API (jobs, pushed measurements): the nav links its docs.
API_DOCS_ROLES = frozenset({Role.DATA_ENGINEER.value, Role.DEVOPS_ENGINEER.value})


def sees_api_docs(user: Any) -> bool:
    """Admins (superusers and staff) and the engineers get a link to the API docs; the docs
    page itself is not restricted by it."""
    return bool(
        is_admin(user) or getattr(user, "is_staff", False) or role_names(user) & API_DOCS_ROLES
    )


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
        "search": "search",
        "unit-dashboard": "dashboards",
    }
    return {
        "can_create_initiative": can_create_initiative(user),
        "user_roles": roles,
        "show_api_docs": sees_api_docs(user),
        # The search box keeps what was searched for on the results page.
        "search_q": request.GET.get("q", "") if match and match.url_name == "search" else "",
        "nav": names.get(match.url_name if match else "", ""),
    }
