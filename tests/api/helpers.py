"""Small helpers shared by the API tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

API = "/api/v1"


def authenticate(client: APIClient, user: Any) -> APIClient:
    """Make every request of `client` carry the user's token."""
    token = Token.objects.get_or_create(user=user)[0]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def error_of(response: Any) -> dict[str, Any]:
    """The error object of a response, checking the shape every error shares."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str), body
    assert isinstance(error.get("message"), str), body
    assert error["message"], body
    return error
