"""Alert e-mails link to the address the app is served on (#13): `SITE_URL`, by default what
`make run` prints (http://HOST:PORT, with the HOST and PORT given to make), not always port
8000."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from notifications import services
from notifications.models import Alert, Event

ROOT = Path(__file__).resolve().parents[2]


def _site_url(**env: str) -> str:
    """settings.SITE_URL in a fresh process with this environment (settings read it once)."""
    environment = {
        key: value for key, value in os.environ.items() if key not in {"SITE_URL", "HOST", "PORT"}
    }
    environment.update(DJANGO_SETTINGS_MODULE="bizdevops.settings", DEBUG="1", **env)
    out = subprocess.run(  # noqa: S603  (a fixed command line)
        [sys.executable, "-c", "from django.conf import settings; print(settings.SITE_URL)"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _makefile_default() -> str:
    """The address `make run` prints with make's defaults."""
    makefile = (ROOT / "Makefile").read_text()
    host = re.search(r"^HOST\s*\?=\s*(\S+)", makefile, re.M)
    port = re.search(r"^PORT\s*\?=\s*(\S+)", makefile, re.M)
    assert host and port
    assert "http://$(HOST):$(PORT)/" in makefile  # what `make run` prints
    return f"http://{host.group(1)}:{port.group(1)}"


def test_the_default_is_what_make_run_prints() -> None:
    assert _site_url() == _makefile_default()


def test_make_run_with_another_port_or_host_is_followed() -> None:
    # `make run PORT=8123 HOST=0.0.0.0` puts both in the environment of the server and workers.
    assert _site_url(PORT="8123") == "http://127.0.0.1:8123"
    assert _site_url(PORT="8123", HOST="192.0.2.7") == "http://192.0.2.7:8123"


def test_an_explicit_site_url_wins() -> None:
    assert _site_url(SITE_URL="https://bizdevops.example.com", PORT="8123") == (
        "https://bizdevops.example.com"
    )


@pytest.mark.django_db
def test_the_alert_email_links_to_the_site_url(settings: Any, pm: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "http://127.0.0.1:8123/"
    mail.outbox = []
    alert = services.alert_record(
        kind="kpi_status",
        message="BDO-1 Fraud caught: healthy → critical.",
        recipients=[pm.pk],
        event=Event.KPI_STATUS_CHANGED,
        payload={},
        url="/initiatives/BDO-1/dashboard/",
    )
    assert services.alert_email(Alert.objects.get(pk=alert.pk)) == 1
    (message,) = mail.outbox
    assert "http://127.0.0.1:8123/initiatives/BDO-1/dashboard/" in message.body
    assert ":8000" not in message.body
