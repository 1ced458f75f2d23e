"""Throttling: anonymous clients and each user have their own budget; a 429 has the error
shape. DRF reads the rates once, when rest_framework.throttling is imported
(`SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES`), so overriding
REST_FRAMEWORK alone would not change them: the class attribute is patched as well."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from rest_framework.authtoken.models import Token
from rest_framework.throttling import SimpleRateThrottle

from bizdevops import throttling
from tests.helpers import clear_cache

ANON_LIMIT = 3
USER_LIMIT = 5
TOKEN_URL = "/api/v1/auth/token/"
LIST_URL = "/api/v1/initiatives/"
WRONG_PASSWORD = "wrong"
SCHEMA_URL = "/api/schema/?format=json"  # errors follow the negotiated format (else YAML)


@pytest.fixture(autouse=True)
def low_rates(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    rates = {"anon": f"{ANON_LIMIT}/minute", "user": f"{USER_LIMIT}/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    clear_cache()  # the throttles keep their history in the default cache
    yield
    clear_cache()


def _token_client(user: Any) -> Client:
    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def _login(client: Client, password: str = WRONG_PASSWORD, **extra: str) -> Any:
    return client.post(
        TOKEN_URL,
        {"username": "pm", "password": password},
        content_type="application/json",
        **extra,
    )


def _assert_throttled(response: Any) -> None:
    assert response.status_code == 429, response.content
    assert response["Content-Type"].split(";")[0].endswith("json"), response["Content-Type"]
    assert int(response["Retry-After"]) > 0
    body = json.loads(response.content)
    assert set(body) == {"error"}
    assert body["error"]["code"] == "throttled"
    assert body["error"]["message"].startswith("Request was throttled.")
    assert set(body["error"]) == {"code", "message"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The throttles' time, set by the test: 10 s into a minute."""
    now = [60.0 * 29_000_000 + 10]
    monkeypatch.setattr(throttling._FixedWindowRateThrottle, "timer", staticmethod(lambda: now[0]))
    return now


def _spend_anonymous_budget(client: Client, **extra: str) -> None:
    """/api/schema/ is open to anonymous clients and throttled like every API view."""
    for _ in range(ANON_LIMIT):
        assert client.get(SCHEMA_URL, **extra).status_code == 200


@pytest.mark.django_db
def test_anonymous_requests_get_429_after_the_limit() -> None:
    client = Client()
    _spend_anonymous_budget(client)
    _assert_throttled(client.get(SCHEMA_URL))
    # One budget for every anonymous API view (the docs pages answer in plain text).
    assert client.get("/api/docs/").status_code == 429


@pytest.mark.django_db
def test_the_token_endpoint_is_throttled_for_anonymous_clients(pm: Any) -> None:
    """Password guessing on POST /api/v1/auth/token/ must hit the anonymous rate.
    (DRF's ObtainAuthToken sets `throttle_classes = ()`; `throttle_scope` alone does nothing
    without ScopedRateThrottle.)"""
    client = Client()
    statuses = [_login(client).status_code for _ in range(ANON_LIMIT)]
    assert statuses == [400] * ANON_LIMIT  # wrong password: refused, but counted
    _assert_throttled(_login(client))
    # Also with the right password: the budget is spent, not the credentials.
    _assert_throttled(_login(client, password="pw"))


@pytest.mark.django_db
def test_authenticated_users_have_their_own_budget(pm: Any, other_pm: Any) -> None:
    anonymous = Client()
    _spend_anonymous_budget(anonymous)
    _assert_throttled(anonymous.get(SCHEMA_URL))

    # Same address, but a user: the anonymous budget does not apply.
    first = _token_client(pm)
    assert [first.get(LIST_URL).status_code for _ in range(USER_LIMIT)] == [200] * USER_LIMIT
    _assert_throttled(first.get(LIST_URL))

    # Another user has a budget of their own.
    second = _token_client(other_pm)
    assert [second.get(LIST_URL).status_code for _ in range(USER_LIMIT)] == [200] * USER_LIMIT
    _assert_throttled(second.get(LIST_URL))

    # The budget belongs to the user, not to the token.
    Token.objects.filter(user=pm).delete()
    _assert_throttled(_token_client(pm).get(LIST_URL))
    _assert_throttled(anonymous.get(SCHEMA_URL))  # and the anonymous one is still spent


@pytest.mark.django_db
def test_unauthenticated_requests_to_protected_endpoints_are_401_not_counted(pm: Any) -> None:
    """Authentication and permissions are checked before the throttles: a 401 does not spend
    the anonymous budget, and has the error shape."""
    client = Client()
    for _ in range(ANON_LIMIT + 2):
        response = client.get(LIST_URL)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == "Token"
    assert _login(client).status_code == 400


@pytest.mark.django_db
def test_a_forged_x_forwarded_for_does_not_reset_the_anonymous_budget() -> None:
    """Without REST_FRAMEWORK["NUM_PROXIES"], DRF identifies a client by the whole
    X-Forwarded-For header the client sends: every made-up address gets a fresh budget.
    (Behind one reverse proxy, NUM_PROXIES=1 takes the address the proxy appended.)"""
    client = Client()
    _spend_anonymous_budget(client)
    _assert_throttled(client.get(SCHEMA_URL))
    forged = [client.get(SCHEMA_URL, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}") for n in range(3)]
    assert [r.status_code for r in forged] == [429, 429, 429]


def _run_django(code: str, env: dict[str, str]) -> str:
    """Run Python code in another process of this project (start-up settings, a second web
    process); its output."""
    result = subprocess.run(  # noqa: S603  (our own interpreter, fixed arguments)
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_rates_come_from_the_environment() -> None:
    """API_THROTTLE_ANON / API_THROTTLE_USER set DEFAULT_THROTTLE_RATES (read at start-up)."""
    code = (
        "import django; django.setup();"
        "from rest_framework.throttling import SimpleRateThrottle as T;"
        "print(T.THROTTLE_RATES['anon'], T.THROTTLE_RATES['user'])"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bizdevops.settings",
        "DEBUG": "1",
        "API_THROTTLE_ANON": "7/hour",
        "API_THROTTLE_USER": "11/second",
    }
    stdout = _run_django(code, env)
    assert stdout.split() == ["7/hour", "11/second"]


@pytest.mark.django_db
@pytest.mark.redis
def test_separate_processes_share_one_throttle_budget() -> None:
    """N web processes must not allow N times the rate: with REDIS_URL set, the throttle
    history lives in Redis. Another process spends the anonymous budget; this one is then
    throttled. (With a per-process cache this process would still have its whole budget.)"""
    from django.conf import settings

    code = (
        "import django; django.setup();"
        "from django.test import Client;"
        f"print([Client().get({SCHEMA_URL!r}).status_code for _ in range({ANON_LIMIT})])"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bizdevops.settings",
        "DEBUG": "1",
        "API_THROTTLE_ANON": f"{ANON_LIMIT}/minute",
        "ALLOWED_HOSTS": "testserver",
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", ""),
    }
    stdout = _run_django(code, env)
    assert stdout.split("\n")[-2] == str([200] * ANON_LIMIT)
    _assert_throttled(Client().get(SCHEMA_URL))


def test_the_cache_is_redis_when_redis_url_is_set_and_local_otherwise() -> None:
    code = (
        "import django; django.setup();"
        "from django.conf import settings; c = settings.CACHES['default'];"
        "print(c['BACKEND'], c.get('LOCATION', '-'))"
    )
    outputs = []
    for redis_url in ("redis://127.0.0.1:6379/9", ""):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bizdevops.settings", "DEBUG": "1"}
        env["REDIS_URL"] = redis_url
        outputs.append(_run_django(code, env).split("\n")[-2].split()[:2])
    assert outputs[0] == ["django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6379/9"]
    assert outputs[1][0] == "django.core.cache.backends.locmem.LocMemCache"


def _port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db
def test_a_cache_that_does_not_answer_lets_requests_through(pm: Any) -> None:
    """The throttle counters are in Redis: with Redis down, every API request was a 500. Now
    a request goes through unthrottled (and a warning is logged), like a broker outage never
    fails a request."""
    dead = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_port_nobody_listens_on()}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    with override_settings(CACHES=dead):
        anonymous = Client().get(SCHEMA_URL)
        signed_in = _token_client(pm).get("/api/v1/initiatives/")
    assert anonymous.status_code == 200, anonymous.content[:300]
    assert signed_in.status_code == 200, signed_in.content[:300]


@pytest.mark.django_db
def test_the_budget_is_per_clock_window_and_retry_after_says_when_the_next_begins(
    pm: Any, clock: list[float]
) -> None:
    """A fixed window per rate period (one counter increment per request): the limit holds
    in each window, a refused request is told the seconds left in it, and the next window
    has the whole budget again."""
    client = _token_client(pm)
    assert [client.get(LIST_URL).status_code for _ in range(USER_LIMIT)] == [200] * USER_LIMIT
    refused = client.get(LIST_URL)
    _assert_throttled(refused)
    assert refused["Retry-After"] == "50"

    clock[0] += 49.5  # half a second before the next minute: still refused
    refused = client.get(LIST_URL)
    _assert_throttled(refused)
    assert refused["Retry-After"] == "1"

    clock[0] += 0.6  # the next minute
    assert [client.get(LIST_URL).status_code for _ in range(USER_LIMIT)] == [200] * USER_LIMIT
    _assert_throttled(client.get(LIST_URL))


@pytest.mark.django_db
def test_refused_requests_do_not_push_the_window_back(pm: Any, clock: list[float]) -> None:
    """Hammering while refused does not extend the wait: the window ends when it ends."""
    client = _token_client(pm)
    for _ in range(USER_LIMIT):
        client.get(LIST_URL)
    for _ in range(20):
        _assert_throttled(client.get(LIST_URL))
    clock[0] += 50
    assert client.get(LIST_URL).status_code == 200


@pytest.mark.django_db
@pytest.mark.redis
def test_the_counter_is_one_redis_key_per_window_that_expires(pm: Any) -> None:
    """One integer per user and window, living no longer than the window's period: no
    history is kept, and the counters of past windows go away by themselves."""
    from django.core.cache import caches

    cache = caches["default"]
    client = _token_client(pm)
    for _ in range(3):
        assert client.get(LIST_URL).status_code == 200

    redis = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    keys = list(redis.scan_iter(match=f"{cache.key_prefix}:*throttle_user_{pm.pk}_*"))
    assert len(keys) == 1, keys
    assert int(redis.get(keys[0])) == 3
    assert 0 < redis.ttl(keys[0]) <= 60
