"""Data source URLs at rest: encrypted with Fernet (AES + HMAC), never stored in plain text."""

from __future__ import annotations

import base64
import hashlib
import os
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> Fernet:
    key: str | bytes = settings.DATA_SOURCE_KEY
    if not key:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "DATA_SOURCE_KEY is not set: generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
                ".decode())'`, or give data sources an environment variable instead of a URL."
            )
        # Development only: a key derived from the development SECRET_KEY.
        key = base64.urlsafe_b64encode(hashlib.sha256(settings.SECRET_KEY.encode()).digest())
    return Fernet(key)


def encrypt(url: str) -> str:
    return _fernet().encrypt(url.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A data source URL cannot be decrypted: DATA_SOURCE_KEY changed. Enter the URL again."
        ) from None


def from_env(name: str) -> str | None:
    return os.environ.get(name)


def redact(url: str) -> str:
    """The URL as it may be shown: no user, password or query string."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":  # a file path, no credentials
        return url.split("?", 1)[0]
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
