"""What the browser is told: HSTS and the SSL redirect in production, a Content-Security-Policy
on every response (also with DEBUG, so the browser tests see violations), no inline script in
our templates, nothing loaded from another host; and `check --deploy` is clean."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "SESSION_COOKIE", "CSRF_COOKIE", "DJANGO_"))
    }
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="bizdevops.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        DJANGO_SETTINGS_MODULE="bizdevops.settings",
        **extra,
    )
    env.pop("REDIS_URL", None)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (our own interpreter, fixed arguments)
        [sys.executable, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env(tmp_path)
    )
    output = result.stdout + result.stderr
    assert re.findall(r"\b[\w.]+\.W\d{3}\b", output) == [], output
    assert result.returncode == 0, output
    assert "System check identified no issues" in output


_HEADERS = """
import json, django; django.setup()
from django.test import Client
client = Client(HTTP_HOST="bizdevops.example.com")
plain = client.get("/api/schema/?format=json")
# (A JSON answer: rendering pages would need collectstatic's manifest.)
secure = client.get("/healthz", secure=True)
health = client.get("/healthz")
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "secure": dict(secure.headers),
    "health": health.status_code,
}))
"""


def _production_headers(tmp_path: Path, **extra: str) -> dict[str, Any]:
    result = _run(["-c", _HEADERS], _production_env(tmp_path, **extra))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_production_sends_hsts_and_redirects_plain_http(tmp_path: Path) -> None:
    seen = _production_headers(tmp_path)
    assert seen["plain"] == [301, "https://bizdevops.example.com/api/schema/?format=json"]
    headers = seen["secure"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    # A load balancer's plain-HTTP health probe is not redirected.
    assert seen["health"] in (200, 503)


def test_hsts_and_the_redirect_are_configurable(tmp_path: Path) -> None:
    """docker-compose on plain-HTTP localhost, or a proxy that redirects by itself."""
    seen = _production_headers(
        tmp_path,
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="0",
    )
    assert seen["plain"][0] == 200
    assert seen["secure"]["Strict-Transport-Security"] == "max-age=600"
    off = _production_headers(tmp_path, SECURE_HSTS_SECONDS="0")
    assert "Strict-Transport-Security" not in off["secure"]


def _policy(response: Any) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    policy = {}
    for directive in header.split(";"):
        name, *values = directive.split()
        policy[name] = values
    return policy


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/accounts/login/", "/api/docs/", "/api/redoc/", "/nowhere/"])
def test_every_response_has_a_csp_without_inline_or_eval_scripts(url: str) -> None:
    response = Client().get(url)
    policy = _policy(response)
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    for directive, sources in policy.items():
        remote = [s for s in sources if re.match(r"(https?:|\*|//)", s)]
        assert remote == [], f"{directive} allows {remote}"


@pytest.mark.django_db
def test_app_pages_allow_no_inline_styles_either() -> None:
    """Only the ReDoc page relaxes the policy: inline <style> (styled-components) and blob:
    workers (its search)."""
    assert _policy(Client().get("/accounts/login/"))["style-src"] == ["'self'"]
    assert _policy(Client().get("/api/docs/"))["style-src"] == ["'self'"]
    redoc = _policy(Client().get("/api/redoc/"))
    assert redoc["style-src"] == ["'self'", "'unsafe-inline'"]
    assert redoc["worker-src"] == ["'self'", "blob:"]
    assert _policy(Client().get("/accounts/login/"))["worker-src"] == ["'self'"]


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "inline event handler"),
    (re.compile(r"\bhx-on", re.I), "hx-on (needs eval)"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
    (re.compile(r"<style[\s>]", re.I), "inline <style>"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"(src|href)=[\"']?(https?:)?//", re.I), "asset from another host"),
]
# The API docs load their init script with the request's CSP nonce; ReDoc's page may style
# itself inline (its policy allows it there).
NONCED = {"drf_spectacular/swagger_ui.html"}


def test_templates_have_no_inline_script_or_handler() -> None:
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        name = str(path.relative_to(ROOT / "templates"))
        text = path.read_text()
        for pattern, what in INLINE:
            for match in pattern.finditer(text):
                if name in NONCED and 'nonce="{{ request.csp_nonce }}"' in match.group(0):
                    continue
                found.append(f"{name}: {what}: {match.group(0)!r}")
    assert found == []


def test_htmx_injects_no_style_and_evaluates_nothing() -> None:
    base = (ROOT / "templates" / "_base.html").read_text()
    config = json.loads(re.search(r'name="htmx-config" content=\'([^\']+)\'', base).group(1))
    assert config["includeIndicatorStyles"] is False  # else htmx adds an inline <style>
    assert config["allowEval"] is False
    css = (ROOT / "static" / "css" / "app.css").read_text()
    assert ".htmx-indicator" in css  # the styles htmx would have injected


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_scripts_fetch_nothing_from_another_host(page: str) -> None:
    """ReDoc's bundle showed its logo from https://cdn.redoc.ly; every script the docs pages
    load is ours, from static/, and names no CDN or web-font host."""
    html = Client().get(page).content.decode()
    scripts = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    assert scripts
    for url in scripts:
        path = finders.find(url.removeprefix("/static/").split("?")[0])
        assert path, url
        text = Path(path).read_text(errors="replace")
        hosts = re.findall(r"https://(cdn\.[\w.-]+|fonts\.(?:googleapis|gstatic)\.com)", text)
        assert hosts == [], f"{url} loads from {sorted(set(hosts))}"
