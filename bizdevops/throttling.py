"""The API throttles. Their counters live in the cache (Redis when REDIS_URL is set, so every
web process counts against one budget); when the cache does not answer, the request goes
through unthrottled and a warning is logged: a Redis outage must not fail the API. Password
guessing stays bounded meanwhile by the login lockout, which counts in the database.

The budgets are fixed windows: `API_THROTTLE_USER=1200/minute` allows 1,200 requests in each
clock minute, counted by one increment of one integer per request (DRF's own throttle keeps the
list of the timestamps of the last `rate` requests and rewrites all of it on every request:
1.1 ms per request near the limit, against about 0.1 ms). A client that spends a whole budget
at the end of one window and another at the start of the next gets at most twice the rate over
a short stretch; the rate of any whole window stays bounded. A refused request answers 429
with `Retry-After`: the seconds left in the window."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from rest_framework import throttling

log = logging.getLogger(__name__)


def _count(cache: BaseCache, key: str, seconds: int) -> int:
    """Add one to the counter `key` of the cache, created to live `seconds`; its new value."""
    if cache is default_cache:  # DRF's `cache`: a proxy of the default cache
        cache = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(cache, RedisCache):
        # INCR and EXPIRE in one round trip and one transaction (MULTI/EXEC): the counter
        # never outlives its window, whichever process made it. The client is the cache's
        # own (its connection pool, its server for this key).
        name = cache.make_and_validate_key(key)
        client = cache._cache.get_client(name, write=True)
        pipe = client.pipeline()
        pipe.incr(name)
        pipe.expire(name, seconds)
        return int(pipe.execute()[0])
    # Other caches (process memory without REDIS_URL): `add` makes the counter if it is not
    # there, `incr` counts (atomic in the local memory cache).
    cache.add(key, 0, seconds)
    try:
        return cache.incr(key)
    except ValueError:  # expired between the two calls: this request opens the window
        cache.add(key, 1, seconds)
        return 1


class _FixedWindowRateThrottle(throttling.SimpleRateThrottle):
    """DRF's rate throttle (the same scopes, rates, cache keys and client identities) counting
    per fixed window of the rate's period instead of over a sliding history."""

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = math.floor(self.now / self.duration)
        self.window_ends = (window + 1) * self.duration
        try:
            spent = _count(self.cache, f"{self.key}_{window}", self.duration)
        except RedisError as error:
            log.warning("API throttle skipped: the cache does not answer (%s).", error)
            return True
        return spent <= self.num_requests

    def wait(self) -> float:
        """The seconds until the window ends (DRF sends them, rounded up, as Retry-After)."""
        return max(self.window_ends - self.now, 1.0)


class AnonRateThrottle(_FixedWindowRateThrottle, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_FixedWindowRateThrottle, throttling.UserRateThrottle):
    pass
