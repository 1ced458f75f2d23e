"""The API throttles. Their counters live in the cache (Redis when REDIS_URL is set, so every
web process counts against one budget); when the cache does not answer, the request goes
through unthrottled and a warning is logged: a Redis outage must not fail the API. Password
guessing stays bounded meanwhile by the login lockout, which counts in the database."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from rest_framework import throttling

log = logging.getLogger(__name__)


class _LetThroughWithoutCache:
    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except RedisError as error:
            log.warning("API throttle skipped: the cache does not answer (%s).", error)
            return True


class AnonRateThrottle(_LetThroughWithoutCache, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_LetThroughWithoutCache, throttling.UserRateThrottle):
    pass
