from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.http import HttpRequest

from bizdevops.roles import Role
from initiatives.models import BusinessUnit, Initiative, Phase, Status
from phases.models import Criterion, CriterionKind, GateDecision

ROOT = Path(__file__).resolve().parent.parent


def _settings_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            " print(settings.SECRET_KEY, settings.DEBUG)",
        ],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "bizdevops.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_without_debug_a_secret_key_is_required():
    refused = _settings_with({"DEBUG": "0"})
    assert refused.returncode != 0
    assert "SECRET_KEY must be set" in refused.stderr
    given = _settings_with({"DEBUG": "0", "SECRET_KEY": "from-the-environment"})
    assert given.returncode == 0, given.stderr
    assert given.stdout.split() == ["from-the-environment", "False"]


def test_roles_exist_as_groups(db):
    assert set(Group.objects.values_list("name", flat=True)) >= set(Role.values)


def test_gates_are_seeded_as_rows(db):
    biz = Criterion.objects.filter(gate__code="biz-to-dev")
    assert biz.count() == 6
    assert set(biz.filter(kind=CriterionKind.MANUAL).values_list("code", flat=True)) == {
        "data_feasibility_confirmed",
        "business_signoff",
    }
    dev = Criterion.objects.filter(gate__code="dev-to-ops")
    assert set(dev.values_list("code", flat=True)) >= {
        "iteration_with_feedback",
        "results_accepted",
        "ops_owner_on_team",
    }


def test_seed_demo_spreads_over_phases_and_statuses_and_is_idempotent(db, settings, capsys):
    settings.DEBUG = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "password: 'demo'" in out
    assert set(BusinessUnit.objects.values_list("name", flat=True)) >= {
        "Marketing",
        "Fraud",
        "Risk",
        "Shop floor",
    }
    initiatives = Initiative.objects.all()
    assert initiatives.count() == 8
    assert {i.phase for i in initiatives} == set(Phase.values)
    assert {i.status for i in initiatives} == set(Status.values)
    assert GateDecision.objects.exists()
    from django.contrib.auth import authenticate  # axes needs the request

    for username in ("pm", "scientist", "engineer", "stakeholder", "admin"):
        assert authenticate(HttpRequest(), username=username, password="demo"), username
    counts = (Initiative.objects.count(), GateDecision.objects.count())
    call_command("seed_demo")
    assert (Initiative.objects.count(), GateDecision.objects.count()) == counts
    assert "nothing to add" in capsys.readouterr().out


def test_seed_demo_refuses_without_debug(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not Initiative.objects.exists()


@pytest.mark.redis
def test_celery_reaches_the_broker(settings):
    from bizdevops.celery import app

    app.conf.broker_url = os.environ["REDIS_URL"]
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            with conn.SimpleQueue("bizdevops-ci-check") as queue:
                queue.put({"ping": 1})
                assert queue.get(timeout=5).payload == {"ping": 1}
    finally:
        app.conf.broker_url = settings.CELERY_BROKER_URL
