"""Permission rules: a predicate and its refusal, written once. Views ask a rule to show or
hide an action; services `check` it and refuse with the same text (Django's
`PermissionDenied`, a 403 page or an API 403)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied


class Rule:
    """`rule(user, *objects)` answers; `rule.check(user, *objects)` refuses. The refusal is a
    text, or a function of the objects for a text that names them."""

    def __init__(self, test: Callable[..., bool], refusal: str | Callable[..., str]) -> None:
        self.test = test
        self.refusal = refusal

    def __call__(self, user: Any, *objects: Any) -> bool:
        return bool(self.test(user, *objects))

    def refusal_for(self, *objects: Any) -> str:
        return self.refusal(*objects) if callable(self.refusal) else self.refusal

    def check(self, user: Any, *objects: Any) -> None:
        if not self(user, *objects):
            raise PermissionDenied(self.refusal_for(*objects))
