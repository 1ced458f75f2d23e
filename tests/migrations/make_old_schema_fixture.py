"""Writes tests/migrations/old_schema_seed.json: every row of a database that `seed_demo` filled
on the schema before the `jobs` app existed (commit 4508a72), plus the alerts, webhook rows and
token that the demo does not make, so that the migrations are tested on every table.

Run it in a checkout of that commit (it imports that commit's code), e.g.

    git worktree add /tmp/old 4508a72 && cd /tmp/old
    DEBUG=1 DATABASE_URL=sqlite:////tmp/old.sqlite3 python manage.py migrate
    DEBUG=1 DATABASE_URL=sqlite:////tmp/old.sqlite3 python manage.py seed_demo
    DEBUG=1 DATABASE_URL=sqlite:////tmp/old.sqlite3 python manage.py shell \
        < /path/to/tests/migrations/make_old_schema_fixture.py

The output is committed: the old code cannot run against the new models.
"""

import datetime as dt
import json
import os
from pathlib import Path

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from kpis import services
from kpis.models import KPI, Job, Run
from notifications import services as notifications

admin = User.objects.get(username="admin")
engineer = User.objects.get(username="engineer")
with transaction.atomic():
    # An alert of each kind, a webhook subscription with a delivery, and an API token.
    notifications.webhook_subscribe(
        user=admin,
        url="http://127.0.0.1:9/bizdevops",
        allow_private_addresses=True,
        events=["kpi.status_changed", "run.failed"],
        description="Fixture receiver",
    )
    kpi = KPI.objects.get(name="Fraud caught")
    services.measurements_push(
        kpi=kpi,
        user=engineer,
        items=[(timezone.now().replace(microsecond=0) + dt.timedelta(minutes=5), 50.0)],
    )
    job = Job.objects.get(kpi=kpi)
    run = Run.objects.create(
        job=job, scheduled_for=timezone.now(), trigger="manual", requested_by=engineer
    )
    services.run_start(run_id=run.pk, worker="fixture")
    services.run_fail(run=run, error="The query referenced a missing table.", retry=False)
    Token.objects.create(user=engineer)

SKIP = {
    "django_migrations",
    "django_session",
    "sqlite_sequence",
    "django_admin_log",
    "auth_group_permissions",
}
tables = {}
with connection.cursor() as cursor:
    # Content types first: permissions refer to them.
    first = ["django_content_type", "auth_permission"]
    names = first + [t for t in sorted(connection.introspection.table_names()) if t not in first]
    for table in names:
        if table in SKIP:
            continue
        cursor.execute(f'SELECT * FROM "{table}" ORDER BY 1')  # noqa: S608  (own table names)
        columns = [c[0] for c in cursor.description]
        rows = cursor.fetchall()
        tables[table] = {"columns": columns, "rows": [list(r) for r in rows]}

out = Path(os.environ.get("FIXTURE_OUT", "old_schema_seed.json"))
out.write_text(json.dumps({"commit": "4508a72", "tables": tables}, default=str, indent=0))
print(out, {t: len(v["rows"]) for t, v in tables.items()})
