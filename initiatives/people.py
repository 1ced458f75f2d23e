"""How a person is named, the same way everywhere (pages, messages, e-mails, the history):
the full name, with the username in brackets only where the full name is ambiguous (another
user has the same one, case aside), and the username alone for a user without a name.

Pages use the `{% person user %}` tag (initiatives/templatetags/ui.py), which asks for the
ambiguous names once per request; Python code (messages, e-mail texts) calls `person_name`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.db.models.functions import Lower, Trim


def full_name_key(user: Any) -> str:
    return " ".join(user.get_full_name().split()).lower()


def ambiguous_names() -> frozenset[str]:
    """The full names (lower case) that more than one user has: one query."""
    rows = (
        get_user_model()
        .objects.exclude(first_name="", last_name="")
        .values(first=Lower(Trim("first_name")), last=Lower(Trim("last_name")))
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values_list("first", "last")
    )
    return frozenset(" ".join(f"{first} {last}".split()) for first, last in rows)


def person_name(user: Any, ambiguous: frozenset[str] | None = None) -> str:
    """ "Ada Lovelace", "Ada Lovelace (ada)" when another user is called Ada Lovelace too, or
    "ada" for a user without a name. Without `ambiguous` (the result of `ambiguous_names`),
    one query asks whether the name is shared."""
    if user is None:
        return ""
    key = full_name_key(user)
    if not key:
        return str(user.get_username())
    full = " ".join(user.get_full_name().split())
    if ambiguous is None:
        shared = (
            get_user_model()
            .objects.annotate(first=Lower(Trim("first_name")), last=Lower(Trim("last_name")))
            .filter(first=user.first_name.strip().lower(), last=user.last_name.strip().lower())
            .exclude(pk=user.pk)
            .exists()
        )
    else:
        shared = key in ambiguous
    return f"{full} ({user.get_username()})" if shared else full
