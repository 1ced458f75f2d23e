"""Domain exceptions raised by services.

Views turn them into form errors (or a 403 page for `PermissionDenied`), the API into
400 / 409 responses. Permission refusals use Django's own `PermissionDenied`.
"""

from __future__ import annotations


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
