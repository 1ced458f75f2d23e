"""`make bench [SCALE=small]`: BizDevOps at portfolio scale against raw SQL, on PostgreSQL.

Creates a database of its own (`bizdevops_bench_<pid>`) on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres), migrates it, fills it with server-side
`generate_series` SQL, measures each operation against its raw baseline in the same run
(interleaved, median and p95, SQL query counts), runs the Celery part of scripts/bench_celery.py,
writes the report (full scale: docs/benchmarks.md; SCALE=small: var/benchmarks-small.md) and
drops the database, also on Ctrl-C or an error.

The data set is described in scripts/bench_data.py.

To iterate on one figure: `--keep` keeps the database (and says its name), `--reuse <name>`
measures again in a kept database without building it (the data read back from its rows;
drop it yourself with `dropdb <name>`), `--only board,api` measures only those rows (of
board, api, chart, csv, push, celery). A run with `--only` or `--reuse` writes
var/benchmarks-partial.md unless `--output` says otherwise: docs/benchmarks.md comes from a
whole run on a fresh database. The Celery part makes jobs due and runs them: a database it
ran in is no longer the data set described, so reuse one kept from a run with `--no-celery`
or `--only` without celery.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import logging
import os
import resource
import signal
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql as pgsql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_data import (  # noqa: E402
    YEAR,
    Data,
    build,
    measurement_count,
    per_kpi,
    reused,
    sql,
)
from benchlib import (  # noqa: E402
    Row,
    console,
    error_row,
    format_number,
    interleaved,
    machine_description,
    progress,
    rate_row,
    scale_get,
    time_row,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres"
HTML_BOUND_BYTES = 500_000
CHART_POINTS = 500


def _server_params(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit(f"make bench needs PostgreSQL: DATABASE_URL is {parts.scheme}://...")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or "") or None,
    }


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@contextlib.contextmanager
def bench_database(url: str, keep: bool = False, reuse: str = "") -> Iterator[str]:
    """A fresh database on the server of `url`, dropped on the way out whatever happens; or,
    with `reuse`, that kept database as it is, left in place."""
    params = _server_params(url)
    if reuse:
        probe = psycopg2.connect(dbname=reuse, **params)  # fails clearly if it does not exist
        probe.close()
        console.print(f"reusing database [bold]{reuse}[/bold] (kept)")
        try:
            yield _with_database(url, reuse)
        finally:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
        return
    name = f"bizdevops_bench_{os.getpid()}"
    admin = psycopg2.connect(dbname="postgres", **params)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    console.print(f"created database [bold]{name}[/bold]")
    try:
        yield _with_database(url, name)
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if keep:
            console.print(f"kept database [bold]{name}[/bold]: drop it yourself")
        else:
            with admin.cursor() as cursor:
                drop = pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                cursor.execute(drop.format(pgsql.Identifier(name)))
            console.print(f"dropped database [bold]{name}[/bold]")
        admin.close()


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    # DEBUG=1 only to load the settings without production secrets and the manifest static
    # storage; DEBUG is switched off below, before any template or request.
    os.environ["DEBUG"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bizdevops.settings")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")
    os.environ.setdefault("CELERY_BROKER_URL", os.environ["REDIS_URL"])
    os.environ.setdefault("API_THROTTLE_USER", "1000000/minute")
    import django
    from django.conf import settings

    django.setup()
    settings.DEBUG = False
    # Every force_login logs a line from django-axes; whitenoise warns of the missing
    # collectstatic folder (the pages are measured without static files).
    logging.getLogger("axes").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="No directory at")
    # The test client's host, without django.test's setup_test_environment: that one
    # instruments every template render (a signal per template), which would slow ours only.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _client(data: Data) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(data.admin)
    return client


def _get(client: Any, path: str, params: dict[str, Any] | None = None) -> Any:
    response = client.get(path, params or {})
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params or ''} answered {response.status_code}")
    return response


def _cards_per_column(html: str) -> dict[str, int]:
    """How many cards each board column shows (the baseline fetches as many)."""
    counts = {}
    for phase in ("biz", "dev", "ops"):
        start = html.find(f'data-phase="{phase}"')
        if start < 0:
            counts[phase] = 0
            continue
        end = html.find("</section>", start)
        counts[phase] = html.count("initiative-card", start, end)
    return counts


BOARD_SQL = """
WITH open AS (
    SELECT i.id, i.title, i.phase, i.status, i.dev_started_at, i.dev_timebox_weeks,
        i.business_unit_id, i.accountable_id,
        row_number() OVER (PARTITION BY i.phase ORDER BY i.id) AS n,
        count(*) OVER (PARTITION BY i.phase) AS total
    FROM initiatives_initiative i
    WHERE i.status NOT IN ('cancelled', 'retired') {unit}
)
SELECT c.id, c.title, c.phase, c.status, c.dev_started_at, c.dev_timebox_weeks, c.total,
    u.name, a.username, a.first_name, a.last_name,
    (SELECT count(*) FROM kpis_kpi k WHERE k.initiative_id = c.id) AS kpi_count,
    (SELECT max(CASE
        WHEN m.value IS NULL THEN 0
        WHEN k.direction = 'higher' AND m.value <= k.critical_threshold THEN 3
        WHEN k.direction = 'lower' AND m.value >= k.critical_threshold THEN 3
        WHEN k.direction = 'higher' AND m.value <= k.warning_threshold THEN 2
        WHEN k.direction = 'lower' AND m.value >= k.warning_threshold THEN 2
        ELSE 1 END)
     FROM kpis_kpi k
     LEFT JOIN LATERAL (SELECT value FROM kpis_measurement m WHERE m.kpi_id = k.id
                        ORDER BY m.as_of DESC LIMIT 1) m ON true
     WHERE k.initiative_id = c.id) AS worst_health
FROM open c
JOIN initiatives_businessunit u ON u.id = c.business_unit_id
JOIN auth_user a ON a.id = c.accountable_id
WHERE c.n <= CASE c.phase WHEN 'biz' THEN %(biz)s WHEN 'dev' THEN %(dev)s ELSE %(ops)s END
ORDER BY c.phase, c.id
"""


def bench_board(data: Data, runs: int) -> list[Row]:
    client = _client(data)
    result = []
    for label, params, unit in (
        ("board, unfiltered (admin)", {}, ""),
        ("board, one unit", {"unit": data.unit_id}, "AND i.business_unit_id = %(unit)s"),
    ):
        html = _get(client, "/board/", params).content.decode()
        shown = _cards_per_column(html)
        statement = BOARD_SQL.format(unit=unit)
        args = {**shown, "unit": data.unit_id}
        timing = interleaved(
            partial(_get, client, "/board/", params),
            partial(sql, statement, args),
            runs=runs,
        )
        size = len(html.encode())
        cards = sum(shown.values())
        columns = "/".join(str(shown[phase]) for phase in ("biz", "dev", "ops"))
        note = f"{cards:,} cards ({columns} per column), {size / 1000:,.0f} KB HTML"
        if params:
            result.append(time_row(label, timing, baseline_label="raw SQL", factor=4, note=note))
        else:
            result.append(
                time_row(
                    label,
                    timing,
                    baseline_label="raw SQL",
                    factor=4,
                    note=note,
                    extra_goal=f"HTML <= {HTML_BOUND_BYTES // 1000} KB",
                    extra_met=size <= HTML_BOUND_BYTES,
                )
            )
    return result


API_SQL = """
SELECT (SELECT count(*) FROM initiatives_initiative WHERE phase = 'ops') AS total,
    i.id, i.title, u.name, i.business_unit_id, a.username, i.phase, i.status,
    i.dev_timebox_weeks, i.dev_started_at, i.business_problem, i.business_requirements,
    i.use_case, i.algorithm_translation, i.data_feasibility,
    (SELECT count(*) FROM kpis_kpi k WHERE k.initiative_id = i.id) AS kpi_count,
    i.created_at, i.updated_at
FROM initiatives_initiative i
JOIN initiatives_businessunit u ON u.id = i.business_unit_id
JOIN auth_user a ON a.id = i.accountable_id
WHERE i.phase = 'ops'
ORDER BY i.id
LIMIT 50
"""


def _api_raw() -> bytes:
    rows = sql(API_SQL)
    results = []
    for row in rows:
        started = row[9]
        due_days = None
        if row[6] == "dev" and started is not None:
            due_days = (started + dt.timedelta(weeks=row[8]) - dt.datetime.now(dt.UTC)).days
        results.append(
            {
                "key": f"BDO-{row[1]}",
                "title": row[2],
                "business_unit": row[3],
                "business_unit_id": row[4],
                "accountable": row[5],
                "phase": row[6],
                "status": row[7],
                "dev_timebox_weeks": row[8],
                "dev_started_at": started.isoformat() if started else None,
                "dev_days_left": due_days,
                "dev_overdue": due_days is not None and due_days < 0,
                "business_problem": row[10],
                "business_requirements": row[11],
                "use_case": row[12],
                "algorithm_translation": row[13],
                "data_feasibility": row[14],
                "kpi_count": row[15],
                "created_at": row[16].isoformat(),
                "updated_at": row[17].isoformat(),
            }
        )
    total = rows[0][0] if rows else 0
    page = {"count": total, "next": "?page=2", "previous": None, "results": results}
    return json.dumps(page).encode()


def _token_client(data: Data) -> Any:
    """A client that calls the API as API clients do: with the admin's token."""
    from django.test import Client
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=data.admin)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def bench_api(data: Data, runs: int) -> list[Row]:
    client = _token_client(data)
    params = {"phase": "ops", "page_size": 50}
    body = _get(client, "/api/v1/initiatives/", params).json()
    if len(body.get("results", [])) != 50:
        raise RuntimeError("the API page does not hold 50 initiatives")
    timing = interleaved(
        lambda: _get(client, "/api/v1/initiatives/", params), _api_raw, runs=runs * 3
    )
    return [
        time_row(
            "API /api/v1/initiatives/?phase=ops&page_size=50",
            timing,
            baseline_label="one SQL + json.dumps",
            factor=3,
            note=f"{body.get('count')} Ops initiatives, page of 50, token authentication",
        )
    ]


DATE_BIN_SQL = """
SELECT date_bin(%(width)s * interval '1 second', as_of, %(origin)s) AS bucket,
    avg(value), min(value), max(value), count(*)
FROM kpis_measurement
WHERE kpi_id = %(kpi)s AND as_of >= %(start)s AND as_of < %(end)s
GROUP BY bucket
ORDER BY bucket
"""


def _date_bin(kpi: int, start: dt.datetime, end: dt.datetime, width: int) -> list[Any]:
    origin = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return sql(
        DATE_BIN_SQL,
        {"width": width, "origin": origin, "kpi": kpi, "start": start, "end": end},
    )


def _raw_series(kpi: int, start: dt.datetime, end: dt.datetime, width: int) -> list[Any]:
    """The chart's own bucketing query over the raw values only (what `series` runs for short
    ranges, and for long ones without rollups)."""
    from kpis import buckets

    return list(buckets.aggregate([kpi], [("raw", start, end)], buckets.epoch_bucket_sql(width)))


def bench_chart(data: Data, runs: int) -> list[Row]:
    from kpis.models import KPI
    from kpis.selectors import series

    kpi = KPI.objects.get(pk=data.big_kpi)
    end = data.end + dt.timedelta(seconds=1)  # the newest value is at data.end
    has_rollups = sql("SELECT to_regclass('kpis_rollup') IS NOT NULL")[0][0]
    rollups = (
        sql("SELECT count(*) FROM kpis_rollup WHERE kpi_id = %s", [kpi.pk])[0][0]
        if has_rollups
        else 0
    )
    baseline = "raw `date_bin` GROUP BY"
    result = []
    for label, span in (("1 year", YEAR), ("30 days", dt.timedelta(days=30))):
        start = end - span
        values = sql(
            "SELECT count(*) FROM kpis_measurement WHERE kpi_id = %s AND as_of >= %s "
            "AND as_of < %s",
            [kpi.pk, start, end],
        )[0][0]
        chart = series(kpi, start, end)
        width = chart.bucket_seconds  # the baseline makes the same buckets
        raw_query = partial(_date_bin, kpi.pk, start, end, width)
        note = f"{values:,} values -> {len(chart.points)} buckets of {width:,} s"
        name = f"chart, {values:,} values over {label} (`series`)"
        if span == YEAR:
            try:
                timing = interleaved(
                    partial(_raw_series, kpi.pk, start, end, width), raw_query, runs=runs
                )
                result.append(
                    time_row(
                        f"chart, {values:,} values over {label}, raw values "
                        "(`kpis.buckets.aggregate` over the raw piece)",
                        timing,
                        baseline_label=baseline,
                        factor=1.5,
                        note=f"{note}; the path `series` takes without rollups",
                    )
                )
            except ImportError:
                pass  # no kpis.buckets: `series` below is the raw path
        timing = interleaved(partial(series, kpi, start, end), raw_query, runs=runs)
        if span == YEAR and rollups:
            result.append(
                time_row(
                    f"{name}, with rollups",
                    timing,
                    baseline_label=baseline,
                    factor=0.1,
                    note=f"{note}; the KPI has {rollups:,} rollup rows",
                )
            )
        else:
            if span == YEAR:
                note += "; no rollups in this tree, so the 0.1x goal of rollups is not measured"
            result.append(time_row(name, timing, baseline_label=baseline, factor=1.5, note=note))
    return result


def bench_csv(data: Data, runs: int) -> list[Row]:
    from django.db import connection

    client = _client(data)
    path = f"/kpis/{data.big_kpi}/export.csv"
    start = data.end + dt.timedelta(seconds=1) - YEAR

    def ours() -> int:
        response = _get(client, path, {"range": "1y"})
        return sum(len(chunk) for chunk in response.streaming_content)

    def copy() -> int:
        out = io.BytesIO()
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(
                cursor.mogrify(
                    "COPY (SELECT as_of, value, origin FROM kpis_measurement WHERE kpi_id = %s "
                    "AND as_of >= %s ORDER BY as_of) TO STDOUT WITH CSV HEADER",
                    [data.big_kpi, start],
                ).decode(),
                out,
            )
        return out.tell()

    size = ours()
    timing = interleaved(ours, copy, runs=max(3, runs // 2))
    return [
        time_row(
            f"CSV export, 1 year of the {data.scale.big_kpi_measurements:,}-value KPI (streamed)",
            timing,
            baseline_label="`COPY (SELECT ...) TO STDOUT CSV`",
            factor=4,
            note=f"{size / 1e6:.1f} MB of CSV; goal of this bench, not of the issue",
        )
    ]


def _push_items(data: Data) -> list[tuple[dt.datetime, float]]:
    newest = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    return [
        (newest - dt.timedelta(seconds=n), float(n % 1000)) for n in range(data.scale.push_values)
    ]


def _copy_batches(kpi_id: int, batches: list[list[tuple[dt.datetime, float]]]) -> None:
    from django.db import connection

    now = dt.datetime.now(dt.UTC).isoformat()
    for chunk in batches:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for as_of, value in chunk:
            writer.writerow((kpi_id, as_of.isoformat(), repr(value), "api", now))
        buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(
                "COPY bench_copy (kpi_id, as_of, value, origin, recorded_at) FROM STDIN CSV",
                buffer,
            )


def _api_push(client: Any, kpi_id: int, bodies: list[str]) -> None:
    for body in bodies:
        response = client.post(
            f"/api/v1/kpis/{kpi_id}/measurements/", body, content_type="application/json"
        )
        if response.status_code != 200:
            raise RuntimeError(f"push answered {response.status_code}: {response.content!r}")


def bench_push(data: Data, runs: int) -> list[Row]:
    from kpis import services
    from kpis.models import KPI

    kpi = KPI.objects.select_related("initiative").get(pk=data.push_kpi)
    items = _push_items(data)
    batch = data.scale.push_batch
    batches = [items[n : n + batch] for n in range(0, len(items), batch)]
    sql("DROP TABLE IF EXISTS bench_copy")  # left by an earlier run in a reused database
    sql("CREATE TABLE bench_copy (LIKE kpis_measurement INCLUDING ALL)")
    has_rollups = sql("SELECT to_regclass('kpis_rollup') IS NOT NULL")[0][0]

    stored: list[int] = []

    def empty() -> None:
        count = sql("SELECT count(*) FROM kpis_measurement WHERE kpi_id = %s", [kpi.pk])[0][0]
        if count:
            stored.append(count)
        sql("DELETE FROM kpis_measurement WHERE kpi_id = %s", [kpi.pk])
        if has_rollups:
            sql("DELETE FROM kpis_rollup WHERE kpi_id = %s", [kpi.pk])
        sql("TRUNCATE bench_copy")

    def service() -> None:
        for chunk in batches:
            services.measurements_push(kpi=kpi, user=data.admin, items=chunk)

    copy = partial(_copy_batches, kpi.pk, batches)
    bodies = [
        json.dumps([{"as_of": a.isoformat(), "value": v} for a, v in chunk]) for chunk in batches
    ]
    api = partial(_api_push, _client(data), kpi.pk, bodies)
    push_runs = max(3, runs // 2)
    label = f"push {len(items):,} values in batches of {batch:,}"
    baseline = "`COPY` into a table of the same shape"
    rows = []
    for name, func, note in (
        (f"{label} (`measurements_push`)", service, "the service, as the API calls it"),
        (f"{label} (API POST)", api, "JSON bodies built beforehand; parse, validate, service"),
    ):
        stored.clear()
        timing = interleaved(func, copy, runs=push_runs, setup=empty)
        empty()
        if set(stored) != {len(items)}:
            raise RuntimeError(f"a push stored {sorted(set(stored))} rows, not {len(items)}")
        rows.append(
            rate_row(
                name,
                timing,
                items=len(items),
                unit="rows/s",
                baseline_label=baseline,
                factor=0.25,
                note=f"{note}; {len(items):,} new rows per run; the COPY side formats its CSV "
                "from the same tuples, in the same batches, one transaction each",
            )
        )
    empty()
    return rows


# The rows `--only` can name: name -> (progress label, bench); "celery" is scripts/bench_celery.py.
BENCHES: dict[str, tuple[str, Callable[[Data, int], list[Row]]]] = {
    "board": ("board", bench_board),
    "api": ("API list", bench_api),
    "chart": ("chart", bench_chart),
    "csv": ("CSV export", bench_csv),
    "push": ("push", bench_push),
}
ONLY = (*BENCHES, "celery")


def run_all(
    data: Data, bench_url: str, celery: bool = True, only: tuple[str, ...] = ONLY
) -> list[Row]:
    runs = data.scale.repeats
    benches = [BENCHES[name] for name in BENCHES if name in only]
    celery = celery and "celery" in only
    rows: list[Row] = []
    with progress() as bar:
        task = bar.add_task("benchmarks", total=len(benches) + 1)
        for label, bench in benches:
            bar.update(task, description=label)
            try:
                rows.extend(bench(data, runs))
            except Exception as error:  # noqa: BLE001 -- one failing row must not lose the rest
                console.print_exception()
                rows.append(error_row(label, error))
            bar.advance(task)
        if celery:
            bar.update(task, description="Celery (scripts/bench_celery.py)")
            rows.extend(_celery_rows(bench_url, data.scale.name))
        bar.advance(task)
    return rows


def _celery_rows(bench_url: str, scale: str) -> list[Row]:
    if not (ROOT / "scripts" / "bench_celery.py").exists():
        return [error_row("dispatcher and runs (Celery)", "scripts/bench_celery.py is missing")]
    try:
        from bench_celery import run_celery_benchmarks

        return list(run_celery_benchmarks(bench_url, scale))
    except Exception as error:  # noqa: BLE001 -- keep the rows measured above
        console.print_exception()
        return [error_row("dispatcher and runs (Celery)", error)]


# Where a goal is missed, why and what was tried (kept by hand, from the profiles; the report
# appends the text to the row's note when the goal is missed in that run). Keys are parts of
# row names; each text says when its profile was taken, so a stale one shows.
WHY_MISSED: dict[str, str] = {
    "board, one unit": (
        "Profile of 2026-12-06: the page renders the same 150 cards (50 per column) as the "
        "unfiltered board, while the raw query for one unit is half that of the unfiltered "
        "board. Done: cards inline in the column loop with their values worked out in the "
        "view; cards read as plain rows (`.values()`), not model instances; the filter selects "
        "written by the template (the widgets rendered a template per option and listed the "
        "options through a server-side cursor), the unit asked for checked among the listed "
        "units (10 queries, not 11); due dates formatted once per date. Left: the cards' KPI "
        "health is one query that costs about the whole raw statement (each KPI's latest "
        "value probes every monthly partition of the measurements, 28 with the DEFAULT one, "
        "as the raw statement does), an empty Django page, about 15 template variables per card"
    ),
    "API /api/v1/initiatives/": (
        "Since 2026-12-06 a page is one statement (the rows, with the count of all as a "
        "subquery on the initiative table), the token one query, the throttle one Redis "
        "round trip (a fixed-window counter, not DRF's list of timestamps), and the filters "
        "are copied shallowly. Left against the one raw statement: a second statement (the "
        "token, checked on every request), the Redis round trip, Django compiling the page's "
        "SQL (two subqueries), DRF and the middleware"
    ),
    "runs executed": (
        "Profile of 2026-12-06 (one run in process, 25 ms on a machine at load 9, every "
        "statement timed): the result write (upsert, rollups refresh, status, latest value: "
        "one round trip) 6.6 ms, the durable COMMIT 5.1, the claim 3.7, locking the KPI and "
        "finishing the run (with psycopg2's BEGIN) 2.9, the data source 4.8 in three round "
        "trips. A run is now 9 round trips in the worker (17 before: the data source went from "
        "8 to 3, the result transaction from 7 to 4), 3 statements of work "
        "(tests/jobs/test_run_queries.py); the count here adds transaction control. What is "
        "left is server time: with the measurements partitioned by month (13 partitions) "
        "planning the read of the latest value takes 0.8 ms and running it 0.15 ms, and "
        "the rollups refresh plans in 0.8 ms and runs in 0.7. DEBUG=0 (as docker-compose runs "
        "the workers) made no difference measurable in process. An asynchronous result commit "
        "gained 7 % (2026-12-04) and was not kept: a value already shown could vanish after a "
        "crash"
    ),
    "CSV export": (
        "Since 2026-12-04 the view yields one string per 5,000 rows, not per row (6.6 s before "
        "at full scale); what is left is reading the rows through the ORM's server-side cursor "
        "and formatting them in Python, where COPY formats in the server (not profiled further)"
    ),
    "(`measurements_push`)": (
        "Profile of 2026-12-04 (10,000 values, unloaded): 0.83 s, of which 0.54 s is one "
        "880 KB statement that inlines the batch as `ARRAY['...'::timestamptz, ...]` literals "
        "(psycopg2 interpolates on the client), 0.11 s the rollups refresh, 0.07 s the commit"
    ),
}


def _cell(value: float | None, unit: str) -> str:
    return "–" if value is None else format_number(value, unit)


def _row_line(row: Row) -> str:
    ours = _cell(row.value, row.unit)
    if row.p95 is not None:
        ours += f" ({_cell(row.p95, row.unit)})"
    base = _cell(row.baseline, row.unit)
    if row.baseline_p95 is not None:
        base += f" ({_cell(row.baseline_p95, row.unit)})"
    if row.baseline_label:
        base += f" {row.baseline_label}"
    ratio = "–" if row.ratio != row.ratio else f"{row.ratio:.2f}x"
    met = {True: "yes", False: "**no**", None: "–"}[row.met]
    note = row.note
    if row.met is False:
        for part, why in WHY_MISSED.items():
            if part in row.name:
                note = f"{note}. {why}" if note else why
    queries = "–" if row.queries is None else str(row.queries)
    cells = [row.name, ours, base, ratio, row.goal or "–", met, queries, note]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _paragraphs(*texts: str) -> str:
    return "\n\n".join(textwrap.fill(" ".join(text.split()), width=96) for text in texts)


def report(data: Data, rows: list[Row], described: dict[str, str], elapsed: float) -> str:
    scale = data.scale
    machine = "\n".join(f"- {key}: {value}" for key, value in described.items())
    steps = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in data.steps)
    if data.reused:
        steps = f"built by an earlier run: database {data.reused} reused"
    table = "\n".join(_row_line(row) for row in rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    target = "docs/benchmarks.md" if scale.name == "full" else f"var/benchmarks-{scale.name}.md"
    intro = _paragraphs(
        f"""BizDevOps at portfolio scale, each figure against the fastest raw baseline for the
        same work, measured in the same run. `make bench` measures the full scale and writes
        docs/benchmarks.md; `make bench SCALE=small` (1/20 of the data, the quick check, meant
        to take under 3 minutes) writes var/benchmarks-small.md. It needs PostgreSQL
        (`DATABASE_URL`, default `{DEFAULT_URL}`: the bench creates a database
        `bizdevops_bench_<pid>` on that server and drops it at the end, also on Ctrl-C or an
        error) and Redis (`REDIS_URL`, default `redis://127.0.0.1:6379/7`) for the Celery
        rows. Speed is measured here, never in timed tests; the tests assert query counts.""",
        f"""This file: {target}, scale **{scale.name}**, the whole run took
        {elapsed / 60:.1f} minutes.""",
    )
    dataset = _paragraphs(
        f"""{scale.units} business units; {scale.initiatives:,} initiatives (half in Ops, all
        active; a quarter in Dev and a quarter in Biz, one in five of those cancelled or
        retired; every unit has every phase); {scale.kpis:,} KPIs (two per initiative, with
        warning and critical thresholds); {scale.jobs:,} enabled jobs (one per KPI of an Ops
        initiative, half hourly intervals, half `*/15 * * * *` cron);
        {measurement_count(scale):,} measurements: {scale.big_kpi_measurements:,} for one KPI
        spread over a year, {per_kpi(scale)} hourly values for every other KPI. Filled by
        server-side `generate_series` statements straight into the migrated tables, monthly
        partitions made for the year first ({steps}). Rollups: {data.rollups}. The exact
        layout is in the docstring of scripts/bench_data.py.""",
    )
    method = _paragraphs(
        f"""Each row alternates ours and the baseline {scale.repeats} times (the API list 3
        times as often, the CSV export and the pushes at least 3 times), after one untimed
        warm-up of each: the median, with the p95 in parentheses (with fewer than 20 runs, the
        slowest run). For times the ratio is ours / baseline and lower is better; for rates
        (rows/s, runs/s) it is also ours / baseline and higher is better: the goal column says
        which. Queries: the SQL statements of one run of ours (a page counts its session and
        user lookups too). Pages go through Django's test client with DEBUG off: middleware,
        session, view and templates, no HTTP server.""",
    )
    return f"""# Benchmarks

<!-- Written by `make bench` (scripts/bench.py); edit the generator, not this file. -->

{intro}

## Machine and versions

{machine}
- peak RSS of the bench process (Django, the test client, the baselines): {peak:,.0f} MiB

## Data set

{dataset}

## Results

{method}

| what | ours median (p95) | baseline median (p95) | ratio | goal | met | queries | note |
|---|---|---|---|---|---|---|---|
{table}

## What each baseline is

- **Board**: the page as the admin sees it against one SQL statement that fetches the same
  cards: as many per column as the page shows, with each card's unit, accountable, KPI count
  and the worst health of its KPIs' latest values, plus each column's total. The baseline
  renders nothing.
- **API list**: the DRF response, asked with a token as API clients ask (the token is checked
  in the database on every request, and the request is throttled), against one SQL statement
  (the page and the total) and `json.dumps` of the same fields.
- **Chart**: the KPI page's series function (`kpis.selectors.series`: at most 500 buckets with
  average, minimum, maximum and count) against the raw `date_bin(...) GROUP BY` over the raw
  values of the same range, with the same bucket width. The raw-values row runs the chart's
  own query over the raw values only (what it does for short ranges); the rollups row is
  `series` as the page calls it, whose goal is an order of magnitude under the raw query (as
  TimescaleDB's continuous aggregates are).
- **CSV export**: the streamed download, read to its end, against a `COPY ... TO STDOUT WITH
  CSV` of the same rows. The export streams in chunks of 5,000 rows (a server-side cursor on
  PostgreSQL), so its memory stays flat whatever the row count.
- **Push**: `measurements_push` (the service behind `POST /api/v1/kpis/<id>/measurements/`)
  and the API itself, batch after batch, new values into an emptied KPI, against `COPY` of
  the same rows into a scratch table of the same shape (`LIKE kpis_measurement INCLUDING
  ALL`: the same indexes and constraints), batch after batch.
- **Dispatcher, runs, worker memory, django-celery-beat** (scripts/bench_celery.py): the notes
  of those rows say what each side does.

The machine may be shared (see the load average above): the interleaving spreads its noise
over both sides of a ratio; the absolute times move more than the ratios.
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", default=os.environ.get("SCALE") or "full")
    parser.add_argument(
        "--output",
        help="report path (default by scale; var/benchmarks-partial.md with --only or --reuse)",
    )
    parser.add_argument(
        "--no-celery", action="store_true", help="skip scripts/bench_celery.py (to iterate)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database (to profile); say its name"
    )
    parser.add_argument(
        "--reuse",
        metavar="DBNAME",
        default="",
        help="measure in this database kept by an earlier --keep run (same --scale), "
        "without building it; it is kept",
    )
    parser.add_argument(
        "--only",
        metavar="ROWS",
        default="",
        help=f"measure only these rows, comma-separated, of: {', '.join(ONLY)}",
    )
    args = parser.parse_args()
    scale = scale_get(args.scale)
    only = tuple(name.strip() for name in args.only.split(",") if name.strip()) or ONLY
    unknown = sorted(set(only) - set(ONLY))
    if unknown:
        raise SystemExit(f"--only takes {', '.join(ONLY)}; not {', '.join(unknown)}")
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        url = DEFAULT_URL
        console.print(f"DATABASE_URL is not set: using the server of {DEFAULT_URL}")
    if args.output:
        output = Path(args.output)
    elif args.only or args.reuse:
        output = ROOT / "var" / "benchmarks-partial.md"  # not a whole run: not the report
    elif scale.name == "full":
        output = ROOT / "docs" / "benchmarks.md"
    else:
        output = ROOT / "var" / f"benchmarks-{scale.name}.md"
    # SIGTERM (a CI timeout, `kill`) drops the database too: make it an exception.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    started = time.perf_counter()
    with bench_database(url, keep=args.keep, reuse=args.reuse) as bench_url:
        setup_django(bench_url)
        version = sql("SHOW server_version")[0][0]
        described = machine_description(postgres_version=version)
        data = reused(scale, args.reuse) if args.reuse else build(scale)
        rows = run_all(data, bench_url, celery=not args.no_celery, only=only)
        text = report(data, rows, described, time.perf_counter() - started)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    console.print(f"wrote {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    print("\n".join(_row_line(row) for row in rows))


if __name__ == "__main__":
    main()
