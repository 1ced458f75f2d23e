"""Password guessing on the HTML login, the admin login and the token endpoint: after
AXES_FAILURE_LIMIT failures the username and the client are locked out (django-axes, counted in
the database), even with the right password, until the cool-off ends or an admin resets them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command
from django.test import Client

LIMIT = 3
LOGIN_URL = "/accounts/login/"
ADMIN_LOGIN_URL = "/admin/login/"
TOKEN_URL = "/api/v1/auth/token/"
ATTACKER = "198.51.100.7"
ELSEWHERE = "203.0.113.9"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limit(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = LIMIT


def _client(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def _login(client: Client, username: str, password: str, url: str = LOGIN_URL) -> Any:
    return client.post(url, {"username": username, "password": password})


def _logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def _assert_locked_out(response: Any) -> None:
    assert response.status_code == 429, response.status_code
    html = response.content.decode()
    assert "Too many failed sign-ins" in html
    assert "try again in 15 minutes" in html
    assert int(response["Retry-After"]) == 15 * 60
    assert 'href="/static/css/app.css"' in html  # the site's own page, not a bare text


def _fail(client: Client, username: str, times: int = LIMIT, url: str = LOGIN_URL) -> None:
    """Wrong passwords: the form again with its error, and the lockout page at the limit."""
    for _ in range(times):
        response = _login(client, username, "wrong", url)
        assert not _logged_in(client)
    assert response.status_code == (429 if times >= LIMIT else 200)


def test_failed_logins_lock_out_the_username_even_with_the_right_password(pm: Any) -> None:
    _fail(_client(ATTACKER), "pm")

    # The right password, from another client: the account is locked, not only the attacker.
    victim = _client(ELSEWHERE)
    _assert_locked_out(_login(victim, "pm", "pw"))
    assert not _logged_in(victim)


def test_failed_logins_lock_out_the_client_for_every_username(pm: Any, other_pm: Any) -> None:
    """Spraying many usernames from one client: the client is locked out."""
    attacker = _client(ATTACKER)
    for n in range(LIMIT - 1):
        _fail(attacker, f"guess{n}", times=1)
    _assert_locked_out(_login(attacker, f"guess{LIMIT}", "wrong"))

    _assert_locked_out(_login(attacker, "pm2", "pw"))
    assert not _logged_in(attacker)


def test_another_user_from_another_client_is_not_locked(pm: Any, other_pm: Any) -> None:
    _fail(_client(ATTACKER), "pm")

    client = _client(ELSEWHERE)
    response = _login(client, "pm2", "pw")
    assert response.status_code == 302
    assert _logged_in(client)


def test_failures_below_the_limit_do_not_lock(pm: Any) -> None:
    client = _client(ATTACKER)
    _fail(client, "pm", times=LIMIT - 1)
    assert _login(client, "pm", "pw").status_code == 302
    assert _logged_in(client)


def test_a_forged_x_forwarded_for_does_not_escape_the_lockout(pm: Any) -> None:
    """The client is REMOTE_ADDR (API_NUM_PROXIES=0): a made-up X-Forwarded-For is ignored."""
    attacker = _client(ATTACKER)
    for n in range(LIMIT):
        _login(attacker, f"guess{n}", "wrong")
    response = attacker.post(
        LOGIN_URL, {"username": "pm", "password": "pw"}, HTTP_X_FORWARDED_FOR="192.0.2.1"
    )
    _assert_locked_out(response)


def test_behind_one_proxy_the_address_the_proxy_appended_counts(settings: Any, pm: Any) -> None:
    """API_NUM_PROXIES=1: the last X-Forwarded-For address (the one our proxy appended) is the
    client, for the login lockout as for the API throttles."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = _client("10.0.0.2")
    for n in range(LIMIT):
        proxy.post(
            LOGIN_URL,
            {"username": f"guess{n}", "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {ATTACKER}",
        )
    # The attacker is locked out whatever it puts in front ...
    locked = proxy.post(
        LOGIN_URL, {"username": "pm", "password": "pw"}, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {ATTACKER}"
    )
    _assert_locked_out(locked)
    # ... and another client behind the same proxy is not.
    other = _client("10.0.0.2")
    response = other.post(
        LOGIN_URL, {"username": "pm", "password": "pw"}, HTTP_X_FORWARDED_FOR=ELSEWHERE
    )
    assert response.status_code == 302


def test_the_admin_login_is_throttled_too(admin_user: Any) -> None:
    _fail(_client(ATTACKER), "admin", url=ADMIN_LOGIN_URL)

    client = _client(ELSEWHERE)
    _assert_locked_out(_login(client, "admin", "pw", ADMIN_LOGIN_URL))
    assert not _logged_in(client)


def test_the_token_endpoint_counts_and_refuses_a_locked_out_user(pm: Any) -> None:
    """The API is no side door: failures there count, and a locked-out user gets no token (429
    with the error shape), even with the right password."""
    api = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(LIMIT - 1):
        response = api.post(TOKEN_URL, {"username": "pm", "password": "wrong"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"
    response = api.post(TOKEN_URL, {"username": "pm", "password": "wrong"})
    assert response.status_code == 429

    response = Client(REMOTE_ADDR=ELSEWHERE).post(TOKEN_URL, {"username": "pm", "password": "pw"})
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "locked_out"
    assert "Too many failed sign-ins" in response.json()["error"]["message"]
    assert "token" not in response.json()
    # And the HTML login is locked for that user as well.
    _assert_locked_out(_login(_client(ELSEWHERE), "pm", "pw"))


def test_an_admin_unlocks_by_deleting_the_attempts(pm: Any, admin_user: Any) -> None:
    from axes.models import AccessAttempt

    _fail(_client(ATTACKER), "pm")
    _assert_locked_out(_login(_client(ELSEWHERE), "pm", "pw"))

    admin = Client()
    admin.force_login(admin_user)
    changelist = admin.get("/admin/axes/accessattempt/")
    assert changelist.status_code == 200
    assert "pm" in changelist.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    response = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()

    client = _client(ELSEWHERE)
    assert _login(client, "pm", "pw").status_code == 302
    assert _logged_in(client)


def test_axes_reset_username_unlocks(pm: Any) -> None:
    _fail(_client(ELSEWHERE), "pm")
    _assert_locked_out(_login(_client(ELSEWHERE), "pm", "pw"))

    call_command("axes_reset_username", "pm")
    call_command("axes_reset_ip", ELSEWHERE)

    client = _client(ELSEWHERE)
    assert _login(client, "pm", "pw").status_code == 302
    assert _logged_in(client)


def _age_attempts(minutes: int) -> None:
    """Move the recorded failures into the past (instead of waiting)."""
    from axes.models import AccessAttempt
    from django.db.models import F

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - dt.timedelta(minutes=minutes))


def test_the_lockout_ends_after_the_cooloff(pm: Any) -> None:
    _fail(_client(ATTACKER), "pm")
    _age_attempts(14)
    _assert_locked_out(_login(_client(ELSEWHERE), "pm", "pw"))
    _age_attempts(2)  # 16 minutes since the last failure

    client = _client(ELSEWHERE)
    assert _login(client, "pm", "pw").status_code == 302
    assert _logged_in(client)


def test_a_failure_during_the_lockout_starts_the_wait_over(pm: Any) -> None:
    attacker = _client(ATTACKER)
    _fail(attacker, "pm")
    _age_attempts(10)
    _assert_locked_out(_login(attacker, "pm", "wrong"))  # a new failure, 10 minutes in
    _age_attempts(10)  # 20 minutes after the first lockout, 10 after the last failure

    _assert_locked_out(_login(_client(ELSEWHERE), "pm", "pw"))
