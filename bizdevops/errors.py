"""Domain exceptions raised by services, and the guards they share.

Views turn them into form errors (or a 403 page for `PermissionDenied`), the API into
400 / 409 responses. Permission refusals use Django's own `PermissionDenied`.
"""

from __future__ import annotations

from collections.abc import Iterable

from bizdevops import text


class DomainError(Exception):
    """A rule refused the action. `field` names the input at fault, when there is one."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class ConflictError(DomainError):
    """The action does not fit the current state (final status, a gate not met, ...)."""

    status_code = 409


def reject_unknown(changes: Iterable[str], allowed: Iterable[str]) -> None:
    """A service's keyword arguments are only the fields it knows: a typo never passes."""
    unknown = set(changes) - set(allowed)
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.")


def clean_text(value: str | None, field: str, label: str, *, multiline: bool = False) -> str:
    """The stripped text, refusing on the field any character `bizdevops.text` refuses
    (controls, direction overrides, invisible characters; line breaks unless `multiline`)."""
    value = (value or "").strip()
    message = text.refusal(value, label, multiline=multiline)
    if message is not None:
        raise DomainError(message, field=field, code="invalid_character")
    return value


def require_text(value: str | None, field: str, label: str, *, multiline: bool = False) -> str:
    """`clean_text`, or a 'required' error on the field when nothing is left."""
    value = clean_text(value, field, label, multiline=multiline)
    if not value:
        raise DomainError(f"{label} is required.", field=field, code="required")
    return value
