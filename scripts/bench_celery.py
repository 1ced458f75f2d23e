"""The Celery rows of `make bench`: the dispatcher against raw SQL and one kombu producer, KPI
runs executed by two real workers against the same workers running a no-op task, the workers'
peak memory, and django-celery-beat's DatabaseScheduler sending the same number of due tasks.

`run_celery_benchmarks(database_url, scale)` (scripts/bench.py calls it) works in databases of
its own on the same server (`<name>_celery`, `<name>_beat`, created and dropped here) and in a
Redis of its own: a `redis-server` on a free port, or without one databases 9 and 10 of
REDIS_URL's server, which it flushes. The Django side runs in a child process of this script
(`--child`) set up on the scratch database, so the caller's own Django set-up is left alone.

Alone: `.venv/bin/python scripts/bench_celery.py [--scale small|full] [--database-url URL]`.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path[:0] = [str(ROOT), str(SCRIPTS)]

from benchlib import (  # noqa: E402
    Row,
    Timing,
    console,
    error_row,
    interleaved,
    peak_rss_mib,
    process_tree_pids,
    rate_row,
    time_row,
)

RUNS_DB, BEAT_DB = 9, 10  # Redis databases: the app's broker, django-celery-beat's
RUNS_QUEUE = "runs"
EXECUTE_RUN = "jobs.tasks.execute_run"
NOOP = "bench_noop.noop"
NOOP_COMMIT = "bench_noop.noop_commit"
COMMIT_TABLE = "bench_noop_commit"  # bench_noop.COMMIT_TABLE
SOURCE_ENV = "BIZDEVOPS_BENCH_SOURCE_URL"
TRIVIAL_SQL = "SELECT n FROM bench_src.one"
BEAT_VENV = ROOT / "var" / "bench-venv-beat"
# kombu's Redis transport imports packaging, which nothing else here pulls in.
BEAT_PACKAGES = ("django-celery-beat", "celery", "redis", "psycopg2-binary", "packaging")
WORKER_CONCURRENCY = 2


@dataclasses.dataclass(frozen=True)
class Plan:
    scale: str
    dispatch_due: tuple[int, ...]
    dispatch_repeats: tuple[int, ...]
    runs: int
    runs_repeats: int
    beat_timeout: float
    beat: bool = True


PLANS = {
    "full": Plan("full", (1_000, 10_000), (5, 3), 2_000, 3, 300.0),
    "small": Plan("small", (1_000,), (3,), 200, 2, 60.0),
}


# The parent: databases, Redis, the child, django-celery-beat --------------------------------


def run_celery_benchmarks(database_url: str, scale: str) -> list[Row]:
    """The Celery rows, measured in databases and a Redis of their own (dropped afterwards)."""
    try:
        plan = PLANS[scale]
    except KeyError:
        raise SystemExit(f"SCALE must be one of {', '.join(PLANS)}, not {scale!r}") from None
    return celery_rows(database_url, plan)


def celery_rows(database_url: str, plan: Plan) -> list[Row]:
    name = urlsplit(database_url).path.lstrip("/") or "bizdevops_bench"
    rows: list[Row] = []
    dispatch_ms: dict[int, float] = {}
    with redis_server() as redis_base:
        scratch, role = f"{name}_celery", f"bench_reader_{os.getpid()}"
        try:
            database_create(database_url, scratch)
            rows_json, dispatch_ms = child_run(
                with_database(database_url, scratch), f"{redis_base}/{RUNS_DB}", role, plan
            )
            rows += [Row(**row) for row in rows_json]
        except Exception as error:  # the other rows still get written
            rows.append(error_row("dispatcher and runs (Celery)", error))
        finally:
            database_drop(database_url, scratch)
            role_drop(database_url, role)
        if plan.beat:
            beat_url = f"{redis_base}/{BEAT_DB}"
            rows += beat_rows(database_url, f"{name}_beat", beat_url, plan, dispatch_ms)
    return rows


@contextlib.contextmanager
def stage(what: str) -> Iterator[None]:
    """Say on stderr what is being measured and how long it took."""
    console.print(f"[bench] {what} ...")
    started = time.perf_counter()
    try:
        yield
    finally:
        console.print(f"[bench] {what}: {time.perf_counter() - started:.1f} s")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def admin_connection(database_url: str) -> Any:
    connection = psycopg2.connect(with_database(database_url, "postgres"))
    connection.autocommit = True
    return connection


def database_create(database_url: str, name: str) -> None:
    connection = admin_connection(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def database_drop(database_url: str, name: str) -> None:
    connection = admin_connection(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


def role_drop(database_url: str, role: str) -> None:
    # Its only grants were in the scratch database, dropped before.
    connection = admin_connection(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """`redis://host:port` of a Redis for the benchmark alone: a redis-server of our own when
    one is installed (nobody else's data is flushed), else REDIS_URL's server, whose databases
    RUNS_DB and BEAT_DB are flushed before and after."""
    binary = shutil.which("redis-server")
    if binary is None:
        parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
        base = urlunsplit(parts._replace(path=""))
        flush = [redis.Redis.from_url(f"{base}/{db}") for db in (RUNS_DB, BEAT_DB)]
        for client in flush:
            client.flushdb()
        try:
            yield base
        finally:
            for client in flush:
                client.flushdb()
        return
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    process = subprocess.Popen(  # noqa: S603  (our own command line)
        [*command, "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), "redis-server to start", timeout=10)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(process)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def wait_until(
    predicate: Callable[[], object], what: str, *, timeout: float, step: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(step)


def stop_process(
    process: subprocess.Popen[bytes], grace: float = 20, first: int = signal.SIGTERM
) -> None:
    """Signal the process group (SIGTERM: a worker's warm shutdown), SIGKILL it if it stays."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def child_run(
    database_url: str, broker_url: str, role: str, plan: Plan
) -> tuple[list[dict[str, Any]], dict[int, float]]:
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "bizdevops.settings",
        "DEBUG": "1",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "REDIS_URL": broker_url,
        "BENCH_READER_ROLE": role,
    }
    env.pop("DATABASE_RUNTIME_ROLE", None)
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as folder:
        out = Path(folder) / "rows.json"
        subprocess.run(  # noqa: S603  (this script)
            [sys.executable, __file__, "--child", json.dumps(dataclasses.asdict(plan)), str(out)],
            env=env,
            cwd=ROOT,
            check=True,
            timeout=3600,
        )
        result = json.loads(out.read_text())
    return result["rows"], {int(n): ms for n, ms in result["dispatch_ms"].items()}


# django-celery-beat, in a virtualenv of its own ----------------------------------------------

BEAT_SETTINGS = '''"""Written by scripts/bench_celery.py: the smallest Django project that runs
django-celery-beat's DatabaseScheduler (all its settings at their defaults)."""
import os
from urllib.parse import urlsplit

_db = urlsplit(os.environ["BEAT_DATABASE_URL"])
SECRET_KEY = "bench-only"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_celery_beat"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": _db.path.lstrip("/"),
    "USER": _db.username or "", "PASSWORD": _db.password or "",
    "HOST": _db.hostname or "", "PORT": _db.port or "",
}}
CELERY_BROKER_URL = os.environ["BEAT_BROKER_URL"]
CELERY_TIMEZONE = "UTC"
'''

BEAT_APP = """import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beatbench_settings")
import django
django.setup()
from celery import Celery
app = Celery("beatbench")
app.config_from_object("django.conf:settings", namespace="CELERY")
"""

BEAT_SEED = """import datetime as dt, json, sys
import django
django.setup()
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks
n = int(sys.argv[1])
PeriodicTask.objects.all().delete()
every_minute, _ = CrontabSchedule.objects.get_or_create(
    minute="*", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC")
# Last run five minutes ago: every task is due at once.
past = timezone.now() - dt.timedelta(minutes=5)
PeriodicTask.objects.bulk_create(
    (PeriodicTask(name=f"bench-{i}", task="beatbench.noop", crontab=every_minute,
                  args=json.dumps([i]), last_run_at=past) for i in range(n)), batch_size=2000)
PeriodicTasks.update_changed()
"""


def beat_venv() -> Path:
    """var/bench-venv-beat with django-celery-beat from PyPI (made once, then reused)."""
    marker = BEAT_VENV / ".bench-installed"
    wanted = " ".join(BEAT_PACKAGES) + "\n"
    if not marker.exists() or marker.read_text() != wanted:
        console.print("[bench] installing django-celery-beat into var/bench-venv-beat")
        if not (BEAT_VENV / "bin" / "pip").exists():
            subprocess.run([sys.executable, "-m", "venv", str(BEAT_VENV)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [str(BEAT_VENV / "bin" / "pip"), "install", "--quiet", *BEAT_PACKAGES],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        marker.write_text(wanted)
    (BEAT_VENV / "beatbench_settings.py").write_text(BEAT_SETTINGS)
    (BEAT_VENV / "beatbench_app.py").write_text(BEAT_APP)
    (BEAT_VENV / "beatbench_seed.py").write_text(BEAT_SEED)
    return BEAT_VENV


def beat_rows(
    database_url: str, name: str, broker_url: str, plan: Plan, ours_ms: dict[int, float]
) -> list[Row]:
    label = "django-celery-beat DatabaseScheduler, {:,} due crontab tasks"
    try:
        venv = beat_venv()
        database_create(database_url, name)
    except Exception as error:
        return [error_row(label.format(n), error) for n in plan.dispatch_due]
    env = beat_environment(venv, with_database(database_url, name), broker_url)
    rows = []
    try:
        python = str(venv / "bin" / "python")
        subprocess.run([python, "-m", "django", "migrate", "-v0"], env=env, cwd=venv, check=True)  # noqa: S603
        for n in plan.dispatch_due:
            try:
                subprocess.run([python, "beatbench_seed.py", str(n)], env=env, cwd=venv, check=True)  # noqa: S603
                with stage(label.format(n)):
                    rows.append(beat_row(label.format(n), venv, env, broker_url, n, plan, ours_ms))
            except Exception as error:
                rows.append(error_row(label.format(n), error))
    finally:
        database_drop(database_url, name)
    return rows


# Only these pass from our environment to the beat virtualenv's processes. Celery reads
# CELERY_BROKER_URL, CELERY_BROKER_READ_URL/WRITE_URL and CELERY_RESULT_BACKEND from the
# environment before its configuration: under scripts/bench.py, whose setup_django sets
# CELERY_BROKER_URL=redis://127.0.0.1:6379/7, beat sent every task there, none to the Redis
# watched here (seen on 2026-12-04: "0 of 1,000 sent").
BEAT_INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


def beat_environment(venv: Path, database_url: str, broker_url: str) -> dict[str, str]:
    inherited = {key: os.environ[key] for key in BEAT_INHERITED_ENV if key in os.environ}
    return inherited | {
        "DJANGO_SETTINGS_MODULE": "beatbench_settings",
        "PYTHONPATH": str(venv),
        "BEAT_DATABASE_URL": database_url,
        "BEAT_BROKER_URL": broker_url,
        # Beat is SIGKILLed: unbuffered, its banner and warnings are in the log all the same.
        "PYTHONUNBUFFERED": "1",
    }


def beat_log_summary(text: str) -> str:
    """The broker line of beat's banner and the log's last lines, for an error row."""
    broker = next((line.strip() for line in text.splitlines() if ". broker ->" in line), "")
    tail = " ".join(text.split())[-250:]
    return f"{broker or 'no banner'}; log tail: {tail or '(empty)'}"


def beat_row(
    name: str,
    venv: Path,
    env: dict[str, str],
    broker_url: str,
    n: int,
    plan: Plan,
    ours_ms: dict[int, float],
) -> Row:
    client = redis.Redis.from_url(broker_url)
    client.flushdb()
    command = [str(venv / "bin" / "celery"), "-A", "beatbench_app", "beat", "-l", "warning"]
    command += ["-S", "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile="]
    log_path = Path(tempfile.gettempdir()) / f"bench-beat-{os.getpid()}.log"
    with log_path.open("wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603  (our own command line)
            command, env=env, cwd=venv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            seen, first, done, messages = watch_beat(client, n, start, plan.beat_timeout, process)
        except RuntimeError:
            raise RuntimeError(
                f"celery beat exited: {beat_log_summary(log_path.read_text())}"
            ) from None
        finally:
            # Killed: on SIGTERM it would first save every entry it sent, one UPDATE each
            # (about 19 s for 1,000 on a loaded 2-core machine), no part of sending them.
            stop_process(process, first=signal.SIGKILL)
    log_text = log_path.read_text()
    log_path.unlink(missing_ok=True)
    if messages == 0:
        # Nothing at all is a broken set-up (wrong broker, database, schedule), not a figure.
        raise RuntimeError(
            f"beat sent nothing to {broker_url} in {plan.beat_timeout:g} s: "
            f"{beat_log_summary(log_text)}"
        )
    client.flushdb()
    ours = ours_ms.get(n, float("nan"))
    settings_used = (
        "all django-celery-beat and Celery beat settings at their defaults (beat_max_loop_interval "
        "5 s for the DatabaseScheduler, sync every 3 min, TZ aware), crontab `* * * * *` in UTC, "
        "last run 5 min ago so all are due; timed from starting `celery beat` (Django set-up "
        f"included); first message after {first:.1f} s"
    )
    if done is not None:
        value, note = done * 1000, f"all {n:,} sent in {done:.1f} s; {settings_used}"
    else:
        value = plan.beat_timeout * 1000
        note = f"only {seen:,} of {n:,} sent in {plan.beat_timeout:g} s (timeout); {settings_used}"
    if messages > seen:
        note += f"; {messages - seen:,} tasks sent again a minute later meanwhile"
    return Row(
        name=name,
        value=value,
        unit="ms",
        baseline=ours,
        baseline_label="BizDevOps dispatcher, same count (median, this run)",
        ratio=value / ours if ours == ours and ours else float("nan"),
        goal="informative (ratio: beat / ours)",
        met=None,
        queries=None,
        p95=None,
        note=note,
    )


def watch_beat(
    client: redis.Redis, n: int, start: float, timeout: float, beat: subprocess.Popen[bytes]
) -> tuple[int, float, float | None, int]:
    """Follow the `celery` queue until n distinct tasks arrived: (distinct seen, seconds to the
    first message, seconds to the n-th or None, messages in all). kombu LPUSHes, so arrival
    order counts from the tail, whose indexes never shift while nobody consumes."""
    seen: set[int] = set()
    read, first, done = 0, float("nan"), None
    while time.perf_counter() - start < timeout:
        if beat.poll() is not None:
            raise RuntimeError(f"celery beat exited with {beat.returncode}")
        length = int(client.llen("celery"))
        if length > read:
            if read == 0:
                first = time.perf_counter() - start
            for raw in client.lrange("celery", -length, -(read + 1)):
                message = json.loads(raw)
                seen.update(ast.literal_eval(message["headers"]["argsrepr"]))
            read = length
            if len(seen) >= n:
                done = time.perf_counter() - start
                break
        time.sleep(0.1)
    return len(seen), first, done, read


# The child: Django on the scratch database --------------------------------------------------


def child(plan: Plan, out: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    total = max([*plan.dispatch_due, plan.runs])
    with stage(f"Celery: migrating a scratch database, {total:,} initiatives with a job each"):
        call_command("migrate", verbosity=0)
        jobs = build(total, os.environ["BENCH_READER_ROLE"])
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    broker.flushdb()
    rows, dispatch_ms = dispatch_rows(plan, broker)
    try:
        rows += runs_rows(plan, jobs, broker) if plan.runs else []
    except Exception as error:
        rows.append(error_row("runs executed, 2 workers, trivial SQL", error))
    out.write_text(
        json.dumps(
            {
                "rows": [dataclasses.asdict(row) for row in rows],
                "dispatch_ms": {str(n): ms for n, ms in dispatch_ms.items()},
            }
        )
    )


def build(total: int, role: str) -> list[int]:
    """`total` active initiatives in Ops with one KPI and one hourly SQL job each (not due), the
    table the jobs read, and a reader role (jobs/datasource_roles.py) that may read only it.
    Returns the job ids."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from initiatives.models import BusinessUnit, Initiative, Phase, Status
    from jobs import datasource_roles
    from jobs.models import DataSource, DataSourceKind, Job, ScheduleKind, SourceKind
    from kpis.models import KPI

    user = get_user_model().objects.create_user("bench-celery")
    unit = BusinessUnit.objects.create(name="Celery bench")
    Initiative.objects.bulk_create(
        (
            Initiative(
                title=f"Celery bench {n}",
                business_unit=unit,
                accountable=user,
                created_by=user,
                phase=Phase.OPS,
                status=Status.ACTIVE,
            )
            for n in range(total)
        ),
        batch_size=2000,
    )
    initiatives = Initiative.objects.filter(business_unit=unit).values_list("pk", flat=True)
    KPI.objects.bulk_create(
        (KPI(initiative_id=pk, name="Value", target=50, created_by=user) for pk in initiatives),
        batch_size=2000,
    )
    source = DataSource.objects.create(
        name="bench", kind=DataSourceKind.DATABASE, url_env=SOURCE_ENV, display_url=SOURCE_ENV
    )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    Job.objects.bulk_create(
        (
            Job(
                kpi_id=pk,
                schedule_kind=ScheduleKind.CRON,
                cron="0 * * * *",
                source_kind=SourceKind.SQL,
                data_source=source,
                sql=TRIVIAL_SQL,
                created_by=user,
                next_run_at=later,
            )
            for pk in KPI.objects.filter(initiative__business_unit=unit).values_list(
                "pk", flat=True
            )
        ),
        batch_size=2000,
    )
    password = secrets.token_urlsafe(16)
    reader = datasource_roles.ReaderRole(
        name=role, database=connection.settings_dict["NAME"], schemas=("bench_src",)
    )
    verifier = datasource_roles.quote_literal(datasource_roles.scram_verifier(password))
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA bench_src")
        cursor.execute("CREATE TABLE bench_src.one (n integer)")
        cursor.execute("INSERT INTO bench_src.one VALUES (42)")
        for statement in datasource_roles.reader_role_sql(reader, password_sql=verifier):
            cursor.execute(statement)
    parts = urlsplit(os.environ["DATABASE_URL"])
    host = f"{parts.hostname}:{parts.port or 5432}"
    os.environ[SOURCE_ENV] = f"postgres://{role}:{password}@{host}{parts.path}"
    return list(Job.objects.order_by("pk").values_list("pk", flat=True))


def queued(broker: redis.Redis) -> int:
    """Messages waiting in the runs queue (kombu keeps a list per priority step)."""
    names = [RUNS_QUEUE] + [f"{RUNS_QUEUE}\x06\x16{step}" for step in (3, 6, 9)]
    pipe = broker.pipeline()
    for queue in names:
        pipe.llen(queue)
    return sum(pipe.execute())


CLAIM_SQL = """
SELECT j.id, j.next_run_at, j.timeout_seconds FROM jobs_job j
JOIN kpis_kpi k ON k.id = j.kpi_id JOIN initiatives_initiative i ON i.id = k.initiative_id
WHERE j.enabled AND j.next_run_at <= %(now)s AND i.phase = 'ops' AND i.status = 'active'
ORDER BY j.next_run_at LIMIT %(limit)s FOR UPDATE OF j SKIP LOCKED
"""
INSERT_RUNS_SQL = """
INSERT INTO jobs_run (job_id, scheduled_for, trigger, state, attempt, deliveries, enqueued_at,
                      error, worker, created_at)
SELECT job_id, moment, 'schedule', 'queued', 0, 1, %(now)s, '', '', %(now)s
FROM unnest(%(ids)s::bigint[], %(moments)s::timestamptz[]) AS due(job_id, moment)
ON CONFLICT (job_id, scheduled_for) DO NOTHING RETURNING id, job_id
"""
# The jobs are hourly (`0 * * * *`): the next fire time is the next full hour.
UPDATE_JOBS_SQL = """
UPDATE jobs_job SET next_run_at = date_trunc('hour', %(now)s::timestamptz) + interval '1 hour'
WHERE id = ANY(%(ids)s)
"""


class DispatchBench:
    """Our dispatcher (the beat task's body, once per simulated beat tick) against the raw
    claim + INSERT + UPDATE on one psycopg2 connection and one kombu producer, on the same
    database and Redis, each timed until every message is in the Redis queue."""

    def __init__(self, broker: redis.Redis) -> None:
        from django.conf import settings
        from kombu import Connection, Exchange, Producer, Queue

        self.broker = broker
        self.pg = psycopg2.connect(os.environ["DATABASE_URL"])
        with self.pg, self.pg.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        self.kombu = Connection(os.environ["CELERY_BROKER_URL"])
        exchange = Exchange(RUNS_QUEUE, "direct")
        self.producer = Producer(self.kombu.channel(), exchange=exchange, routing_key=RUNS_QUEUE)
        self.producer.maybe_declare(Queue(RUNS_QUEUE, exchange, routing_key=RUNS_QUEUE))
        self.interval = float(settings.KPI_DISPATCH_INTERVAL_SECONDS)
        self.ticks: list[tuple[int, float]] = []

    def close(self) -> None:
        self.pg.close()
        self.kombu.release()

    def reset(self, count: int) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE jobs_run, bizdevops_outboxmessage CASCADE")
            cursor.execute(
                "UPDATE jobs_job SET next_run_at = CASE WHEN id IN "
                "(SELECT id FROM jobs_job ORDER BY id LIMIT %s) THEN date_trunc('hour', now()) "
                "ELSE now() + interval '30 days' END",
                [count],
            )
            cursor.execute("VACUUM ANALYZE jobs_job, jobs_run, bizdevops_outboxmessage")
        # Only the queue: a flush would also drop kombu's bindings, which are declared once.
        self.broker.delete(RUNS_QUEUE, "unacked", "unacked_index")

    def wait_published(self, count: int) -> None:
        wait_until(
            lambda: queued(self.broker) >= count, f"{count} messages", timeout=60, step=0.002
        )
        if queued(self.broker) != count:
            raise RuntimeError(f"{queued(self.broker)} messages in the queue, not {count}")

    def ours(self, count: int) -> None:
        from jobs import tasks

        start, ticks, busy = time.perf_counter(), 0, 0.0
        while True:
            began = time.perf_counter()
            sent = tasks.dispatch()
            busy += time.perf_counter() - began
            ticks += 1
            if sent == 0 or queued(self.broker) >= count:
                break
            # Jobs are left due: beat sends the next dispatch one interval later.
            time.sleep(max(0.0, start + ticks * self.interval - time.perf_counter()))
        self.wait_published(count)
        self.ticks.append((ticks, busy))

    def raw(self, count: int) -> None:
        now = dt.datetime.now(dt.UTC)
        with self.pg, self.pg.cursor() as cursor:
            cursor.execute(CLAIM_SQL, {"now": now, "limit": count})
            claimed = cursor.fetchall()
            ids = [row[0] for row in claimed]
            moments = [row[1] for row in claimed]
            cursor.execute(INSERT_RUNS_SQL, {"now": now, "ids": ids, "moments": moments})
            runs = cursor.fetchall()
            cursor.execute(UPDATE_JOBS_SQL, {"now": now, "ids": ids})
        timeouts = {row[0]: row[2] for row in claimed}
        # Pipelined: kombu sends the LPUSHes of up to 1,000 messages in one round trip.
        with self.producer.batch(max_size=1000):
            for run_id, job_id in runs:
                self.publish(run_id, timeouts[job_id])
        self.wait_published(count)

    def publish(self, run_id: int, timeout: int) -> None:
        """The message Celery would send (protocol 2), built by hand."""
        task_id = str(uuid.uuid4())
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        self.producer.publish(
            json.dumps([[run_id], {}, embed]),
            routing_key=RUNS_QUEUE,
            content_type="application/json",
            content_encoding="utf-8",
            headers={
                "lang": "py",
                "task": EXECUTE_RUN,
                "id": task_id,
                "root_id": task_id,
                "parent_id": None,
                "group": None,
                "retries": 0,
                "eta": None,
                "expires": None,
                "timelimit": [timeout + 30, timeout + 10],
                "argsrepr": f"({run_id},)",
                "kwargsrepr": "{}",
                "origin": "bench",
            },
            correlation_id=task_id,
            delivery_mode=2,
            retry=False,
        )


def dispatch_rows(plan: Plan, broker: redis.Redis) -> tuple[list[Row], dict[int, float]]:
    bench = DispatchBench(broker)
    rows, medians = [], {}
    label = (
        "raw SKIP LOCKED claim + one INSERT of runs + one UPDATE of jobs, "
        "published through one kombu producer in batches of 1,000 (Producer.batch)"
    )
    try:
        for count, repeats in zip(plan.dispatch_due, plan.dispatch_repeats, strict=True):
            name = f"dispatcher, {count:,} due"
            bench.ticks.clear()
            try:
                with stage(f"{name}: ours and raw, {repeats} runs each, interleaved"):
                    timing = interleaved(
                        functools.partial(bench.ours, count),
                        functools.partial(bench.raw, count),
                        runs=repeats,
                        warmup=1 if count <= 1_000 else 0,
                        setup=functools.partial(bench.reset, count),
                    )
            except Exception as error:
                rows.append(error_row(name, error, goal="<= 2x"))
                continue
            medians[count] = timing.ours_median * 1000
            timed = bench.ticks[1 if count <= 1_000 else 0 :]  # not the warm-up's
            ticks = "; ".join(f"{t} tick(s), {busy:.2f} s in dispatch" for t, busy in timed)
            note = (
                f"until all {count:,} messages are in Redis; `jobs.tasks.dispatch` called once per "
                f"beat tick ({bench.interval:g} s) while jobs stay due ({dispatch_settings()}): "
                f"{ticks}; {count:,} due of {count_jobs():,} enabled hourly cron jobs"
            )
            rows.append(time_row(name, timing, baseline_label=label, factor=2, note=note))
    finally:
        bench.close()
    return rows, medians


def dispatch_settings() -> str:
    from django.conf import settings

    names = ("KPI_DISPATCH_BATCH", "KPI_DISPATCH_BUDGET_SECONDS")
    return ", ".join(
        f"{name} {getattr(settings, name):g}" for name in names if hasattr(settings, name)
    )


def count_jobs() -> int:
    from jobs.models import Job

    return Job.objects.count()


def runs_reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM bizdevops_outboxmessage")
        cursor.execute(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename LIKE 'kpis_rollup%%'"
        )
        rollups = cursor.fetchone()[0]
        cursor.execute(
            "TRUNCATE jobs_run, kpis_measurement" + (f", {rollups}" if rollups else "") + " CASCADE"
        )
        cursor.execute("UPDATE kpis_kpi SET last_health = ''")


def runs_create(job_ids: list[int]) -> list[int]:
    from jobs.models import Run, Trigger

    moment = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    now = dt.datetime.now(dt.UTC)
    runs = Run.objects.bulk_create(
        Run(
            job_id=pk, scheduled_for=moment, trigger=Trigger.SCHEDULE, enqueued_at=now, deliveries=1
        )
        for pk in job_ids
    )
    return [run.pk for run in runs]


def runs_send(run_ids: list[int]) -> None:
    from django.db import transaction

    from bizdevops import outbox
    from jobs import services

    limits = {
        "soft_time_limit": 30 + services.SOFT_MARGIN_SECONDS,
        "time_limit": 30 + services.HARD_MARGIN_SECONDS,
    }
    with transaction.atomic():
        outbox.enqueue_many(EXECUTE_RUN, [((pk,), limits) for pk in run_ids])


def runs_execute(job_ids: list[int], timeout: float) -> float:
    """Seconds from handing len(job_ids) runs to the outbox to the last one finished."""
    from django.db.models import Count, Max, Q

    from jobs.models import FINISHED_STATES, Run, RunState

    runs_reset()
    run_ids = runs_create(job_ids)
    start = time.time()
    runs_send(run_ids)
    finished = Q(state__in=list(FINISHED_STATES))
    wait_until(
        lambda: Run.objects.filter(finished).count() >= len(run_ids),
        f"{len(run_ids)} runs to finish",
        timeout=timeout,
        step=0.05,
    )
    stats = Run.objects.aggregate(
        last=Max("finished_at"), ok=Count("id", filter=Q(state=RunState.SUCCEEDED))
    )
    if stats["ok"] != len(run_ids):
        errors = Counter(
            Run.objects.exclude(state=RunState.SUCCEEDED).values_list("error", flat=True)
        )
        raise RuntimeError(f"only {stats['ok']} of {len(run_ids)} runs succeeded: {errors}")
    return float(stats["last"].timestamp() - start)


def noops_execute(n: int, broker: redis.Redis, timeout: float, task: str = NOOP) -> float:
    """Seconds from handing n no-op tasks (`task`) to the outbox to the last one acknowledged."""
    from django.db import transaction

    from bizdevops import outbox

    def drained() -> bool:
        pipe = broker.pipeline()
        pipe.hlen("unacked")
        pipe.llen(RUNS_QUEUE)
        return not any(pipe.execute())

    start = time.perf_counter()
    with transaction.atomic():
        outbox.enqueue_many(task, [((i,), {}) for i in range(n)])
    # The relay ran on commit: every message is in the queue (or taken) by now.
    wait_until(lambda: drained() and drained(), f"{n} no-op tasks", timeout=timeout, step=0.005)
    return time.perf_counter() - start


def queries_per_run(job_ids: list[int]) -> list[int]:
    """Django queries of `run_execute` in this process, run after run (the first one opens the
    data source's connection and warms the caches)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs import services
    from jobs.models import Run

    runs_reset()
    counts = []
    for pk in runs_create(job_ids):
        with CaptureQueriesContext(connection) as captured:
            outcome = services.run_execute(run_id=pk, worker="bench")
        if outcome.state != "succeeded":
            raise RuntimeError(f"the trial run {outcome.state}: {Run.objects.get(pk=pk).error}")
        counts.append(len(captured))
    return counts


@contextlib.contextmanager
def runs_worker(broker: redis.Redis) -> Iterator[subprocess.Popen[bytes]]:
    """One `celery worker -Q runs --pool=prefork -c 2` of the app on the scratch database
    (as docker-compose runs it, with 2 pool processes), with the no-op task loaded."""
    from bizdevops.celery import app

    name = f"bench-runs-{os.getpid()}"
    command = [str(ROOT / ".venv" / "bin" / "celery"), "-A", "bizdevops", "worker", "-Q", "runs"]
    command += ["--pool=prefork", f"--concurrency={WORKER_CONCURRENCY}", "-l", "warning"]
    command += [
        "-n",
        f"{name}@%h",
        "--without-mingle",
        "--without-gossip",
        "--include",
        "bench_noop",
    ]
    path = os.pathsep.join(filter(None, [str(ROOT), str(SCRIPTS), os.environ.get("PYTHONPATH")]))
    log_path = Path(tempfile.gettempdir()) / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603  (our own command line)
            command,
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": path},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        from celery.utils.nodenames import gethostname

        node = f"{name}@{gethostname()}"

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited: {log_path.read_text()[-2000:]}")
            return any(node in reply for reply in app.control.ping([node], timeout=0.5))

        with stage("runs: starting the worker"):
            wait_until(answers, "the worker to answer a ping", timeout=60, step=0.2)
        yield process
    finally:
        with stage("runs: stopping the worker"):
            stop_process(process)
        log_path.unlink(missing_ok=True)


def runs_rows(plan: Plan, job_ids: list[int], broker: redis.Redis) -> list[Row]:
    from django.db import connection

    n = plan.runs
    counts = queries_per_run(job_ids[:3])
    timing = Timing(queries=counts[-1])
    # The same runs against a no-op task that makes one durable commit: the floor of a run
    # whose result is committed in one transaction of its own (as issue #12 asks).
    floor = Timing(queries=counts[-1])
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {COMMIT_TABLE} (n integer)")
    timeout = 60 + n / 2  # at 2 runs/s it is broken anyway
    what = f"runs: {n:,} SQL runs and {n:,} no-op tasks, {plan.runs_repeats}x each, 2 workers"
    with stage(what), runs_worker(broker) as worker:
        runs_execute(job_ids[:20], timeout)  # warm-up: imports, connections, caches
        noops_execute(20, broker, timeout)
        noops_execute(20, broker, timeout, NOOP_COMMIT)
        for repeat in range(plan.runs_repeats):
            trio = [
                (lambda: runs_execute(job_ids[:n], timeout), [timing.ours, floor.ours]),
                (lambda: noops_execute(n, broker, timeout), [timing.baseline]),
                (lambda: noops_execute(n, broker, timeout, NOOP_COMMIT), [floor.baseline]),
            ]
            for func, into in trio if repeat % 2 == 0 else reversed(trio):
                elapsed = func()
                for timings in into:
                    timings.append(elapsed)
    memory = {pid: peak_rss_mib(pid) for pid in process_tree_pids(worker.pid)}
    note = (
        f"one `celery worker -Q runs --pool=prefork -c {WORKER_CONCURRENCY}` (DEBUG=1), {n:,} runs "
        f"of `{TRIVIAL_SQL}` as a least-privileged reader role, distinct jobs, sent through the "
        "outbox; timed from the outbox commit to the last finished_at; "
        f"queries: Django queries of one run_execute in process (runs 1-3: {counts})"
    )
    rows = [
        rate_row(
            "runs executed, 2 workers, trivial SQL",
            timing,
            items=n,
            unit="runs/s",
            baseline_label=f"the same worker running a no-op task {n:,} times (outbox, acks_late)",
            factor=0.5,
            note=note,
        ),
        dataclasses.replace(
            rate_row(
                "runs executed against one durable commit per task",
                floor,
                items=n,
                unit="runs/s",
                baseline_label=(
                    f"the same worker running {n:,} no-op tasks that each commit one row "
                    "durably (the floor of one transaction per run)"
                ),
                factor=0.5,
                note="informative: shows how much of the gap to the no-op task is the commit",
            ),
            goal="informative",
            met=None,
        ),
    ]
    pool = [mib for pid, mib in memory.items() if pid != worker.pid and mib is not None]
    main = memory.get(worker.pid)
    rows.append(
        Row(
            name="peak RSS of a runs worker process",
            value=max(pool) if pool else float("nan"),
            unit="MiB",
            baseline=float("nan"),
            baseline_label="",
            ratio=float("nan"),
            goal="informative",
            met=None,
            queries=None,
            p95=None,
            note=(
                f"VmHWM of the {len(pool)} pool processes ({', '.join(f'{m:.0f}' for m in pool)} "
                f"MiB) after the runs benchmark; the worker's main process: "
                f"{main or float('nan'):.0f} MiB"
            ),
        )
    )
    return rows


# Alone ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default=os.environ.get("SCALE", "small"), choices=PLANS)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server URL; its databases <name>_celery and <name>_beat are used",
    )
    parser.add_argument(
        "--only",
        choices=("dispatch", "runs", "beat"),
        help="measure only these rows (beat: the dispatcher too, its baseline)",
    )
    parser.add_argument("--child", nargs=2, metavar=("PLAN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(plan_from_json(args.child[0]), Path(args.child[1]))
        return
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("The Celery benchmarks need PostgreSQL: set DATABASE_URL=postgres://...")
    base = with_database(args.database_url, f"bizdevops_bench_{os.getpid()}")
    started = time.perf_counter()
    plan = PLANS[args.scale]
    if args.only == "dispatch":
        plan = dataclasses.replace(plan, runs=0, beat=False)
    elif args.only == "runs":
        plan = dataclasses.replace(plan, dispatch_due=(), dispatch_repeats=(), beat=False)
    elif args.only == "beat":
        plan = dataclasses.replace(plan, runs=0)
    rows = celery_rows(base, plan)
    print("| what | ours | baseline | ratio | goal | met | queries | note |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.name} | {row.value:,.1f} {row.unit} (p95 {row.p95 or float('nan'):,.1f}) | "
            f"{row.baseline:,.1f} ({row.baseline_label}) | {row.ratio:.2f} | {row.goal} | "
            f"{row.met} | {row.queries} | {row.note} |"
        )
    console.print(f"[bench] Celery rows in {time.perf_counter() - started:.0f} s")


def plan_from_json(text: str) -> Plan:
    values = json.loads(text)
    return Plan(
        scale=values["scale"],
        dispatch_due=tuple(values["dispatch_due"]),
        dispatch_repeats=tuple(values["dispatch_repeats"]),
        runs=values["runs"],
        runs_repeats=values["runs_repeats"],
        beat_timeout=values["beat_timeout"],
        beat=values["beat"],
    )


if __name__ == "__main__":
    main()
