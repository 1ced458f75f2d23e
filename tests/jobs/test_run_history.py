"""The run history of the job page: cursor pages (newest first, no count), filters by state
and trigger kept in the URL and in the page links, htmx fragments with href fallbacks, long
errors folded, the history reloading when the live state box says a run changed, and a
constant number of queries per page."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import json
import re
from typing import Any

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import Job, Run, RunState, Trigger
from tests.helpers import HTMX, html, queries

pytestmark = pytest.mark.django_db


def _url(job: Job) -> str:
    return f"/ops/jobs/{job.pk}/"


def _add_runs(job: Job, count: int, user: Any) -> list[Run]:
    """`count` finished runs, a minute apart, before the job's existing ones: every third one
    failed, the odd ones by hand."""
    start = timezone.now() - dt.timedelta(days=2)
    offset = job.runs.count()
    return Run.objects.bulk_create(
        Run(
            job=job,
            scheduled_for=start + dt.timedelta(minutes=offset + i),
            trigger=Trigger.MANUAL if i % 2 else Trigger.SCHEDULE,
            state=RunState.FAILED if i % 3 == 0 else RunState.SUCCEEDED,
            error=f"boom {i}" if i % 3 == 0 else "",
            value=None if i % 3 == 0 else float(i),
            requested_by=user if i % 2 else None,
            started_at=start,
            finished_at=start + dt.timedelta(seconds=2),
        )
        for i in range(count)
    )


def _shown(content: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-run="(\d+)">', content)]


def _link(content: str, rel: str) -> str | None:
    match = re.search(rf'<a class="btn" href="([^"]+)" hx-get="([^"]+)"[^>]*rel="{rel}"', content)
    if match is None:
        return None
    assert match.group(1) == match.group(2)  # the href and the htmx request are one
    return html_lib.unescape(match.group(1))


@pytest.fixture
def many(ops_job: Job, engineer: Any) -> list[int]:
    """120 runs besides the trial run: the ids newest first."""
    _add_runs(ops_job, 120, engineer)
    return list(ops_job.runs.order_by("-scheduled_for").values_list("pk", flat=True))


def test_cursor_pages_walk_the_history_newest_first_without_repeats(
    client: Any, engineer: Any, ops_job: Job, many: list[int]
) -> None:
    client.force_login(engineer)
    content = html(client.get(_url(ops_job)))
    seen = _shown(content)
    assert seen == many[:50]
    assert _link(content, "prev") is None
    older = _link(content, "next")
    assert older is not None and older.startswith(_url(ops_job) + "?cursor=")

    pages = [seen]
    while older:
        fragment = html(client.get(older, **HTMX)).strip()
        assert fragment.startswith('<div id="runs">')
        pages.append(_shown(fragment))
        newer = _link(fragment, "prev")
        assert newer is not None
        older = _link(fragment, "next")
    assert [len(page) for page in pages] == [50, 50, 21]
    assert [pk for page in pages for pk in page] == many

    # Back from the last page: the one before it.
    assert _shown(html(client.get(newer, **HTMX))) == many[50:100]


def test_filters_by_state_and_trigger_stay_in_the_page_links(
    client: Any, engineer: Any, ops_job: Job, many: list[int]
) -> None:
    client.force_login(engineer)
    failed_manual = list(
        ops_job.runs.filter(state=RunState.FAILED, trigger=Trigger.MANUAL)
        .order_by("-scheduled_for")
        .values_list("pk", flat=True)
    )
    assert len(failed_manual) == 20
    content = html(client.get(_url(ops_job), {"state": "failed", "trigger": "manual"}))
    assert _shown(content) == failed_manual
    assert '<option value="failed" selected>' in content
    assert '<option value="manual" selected>' in content
    assert "All runs</a>" in content

    succeeded = list(
        ops_job.runs.filter(state=RunState.SUCCEEDED)
        .order_by("-scheduled_for")
        .values_list("pk", flat=True)
    )
    fragment = html(client.get(_url(ops_job), {"state": "succeeded"}, **HTMX))
    assert _shown(fragment) == succeeded[:50]
    older = _link(fragment, "next")
    assert older is not None and "state=succeeded" in older
    assert _shown(html(client.get(older, **HTMX))) == succeeded[50:100]

    trials = html(client.get(_url(ops_job), {"trigger": "trial"}, **HTMX))
    assert _shown(trials) == [ops_job.runs.get(trigger=Trigger.TRIAL).pk]
    nothing = html(client.get(_url(ops_job), {"state": "skipped"}, **HTMX))
    assert "No run matches the filters." in nothing


def test_the_filter_form_works_with_and_without_htmx(
    client: Any, engineer: Any, ops_job: Job
) -> None:
    client.force_login(engineer)
    content = html(client.get(_url(ops_job)))
    form = re.search(r'<form id="run-filters".*?</form>', content, re.S)
    assert form is not None
    assert f'method="get" action="{_url(ops_job)}"' in form.group(0)
    assert f'hx-get="{_url(ops_job)}"' in form.group(0)
    assert 'hx-push-url="true"' in form.group(0)
    assert "Filter</button>" in form.group(0)


def test_an_unknown_filter_value_filters_nothing_and_a_forged_cursor_is_404(
    client: Any, engineer: Any, ops_job: Job, many: list[int]
) -> None:
    client.force_login(engineer)
    content = html(client.get(_url(ops_job), {"state": "exploded"}))
    assert _shown(content) == many[:50]
    assert html(client.get(_url(ops_job), {"cursor": "bz14"}), 404)


def test_long_errors_fold_into_details_and_short_ones_stay_inline(
    client: Any, engineer: Any, ops_job: Job
) -> None:
    long_error = "The warehouse refused: " + "x" * 400 + " END"
    now = timezone.now()
    long_run = Run.objects.create(
        job=ops_job, scheduled_for=now, state=RunState.FAILED, error=long_error
    )
    short_run = Run.objects.create(
        job=ops_job,
        scheduled_for=now - dt.timedelta(minutes=1),
        state=RunState.FAILED,
        error="Warehouse said no",
    )
    client.force_login(engineer)
    content = html(client.get(_url(ops_job)))
    row = re.search(rf'<tr data-run="{long_run.pk}">(.*?)</tr>', content, re.S)
    assert row is not None
    assert '<td class="error-cell"><details><summary>The warehouse refused: xxx' in row.group(1)
    assert "…</summary>" in row.group(1)
    assert f"<p>{long_error}</p>" in row.group(1)  # all of it, once opened
    assert f'<tr data-run="{short_run.pk}">' in content
    assert '<td class="error-cell">Warehouse said no</td>' in content


@pytest.mark.parametrize("extra", [{}, HTMX], ids=["page", "htmx"])
@pytest.mark.parametrize("filters", [{}, {"state": "succeeded", "trigger": "manual"}])
def test_a_page_of_runs_costs_the_same_queries_for_3_or_30_runs(
    client: Any,
    engineer: Any,
    ops_job: Job,
    extra: dict[str, str],
    filters: dict[str, str],
) -> None:
    ops_job.runs.all().delete()
    _add_runs(ops_job, 3, engineer)
    client.force_login(engineer)
    url = _url(ops_job) + ("?" + "&".join(f"{k}={v}" for k, v in filters.items()))
    client.get(url, **extra)  # warm-up
    few = queries(client, url, **extra)

    _add_runs(ops_job, 27, engineer)
    if not filters:
        assert len(_shown(html(client.get(url, **extra)))) == 30
    many = queries(client, url, **extra)
    assert few == many, (few, many)


def test_the_history_reloads_when_the_state_box_says_a_run_changed(
    client: Any, engineer: Any, ops_job: Job
) -> None:
    client.force_login(engineer)
    content = html(client.get(_url(ops_job)))
    listener = re.search(r'<div hidden hx-get="([^"]+)" hx-trigger="([^"]+)"[^>]*>', content)
    assert listener is not None
    assert listener.groups() == (_url(ops_job), "runs-changed from:body")
    assert 'hx-include="#run-filters"' in listener.group(0)
    assert 'hx-target="#runs"' in listener.group(0)

    # Queuing a run from the page says so...
    response = client.post(_url(ops_job) + "runs/", {"trigger": "trial"}, **HTMX)
    run = ops_job.runs.order_by("-id").first()
    assert run is not None and run.state == RunState.QUEUED
    assert json.loads(response["HX-Trigger"]) == {"runs-changed": {"run": run.pk}}

    # ... the polls of the unfinished run do not ...
    polled = client.get(f"/ops/runs/{run.pk}/", **HTMX)
    assert "HX-Trigger" not in polled

    # ... and the answer that shows it finished does.
    services.run_execute(run_id=run.pk, worker="tests")
    finished = client.get(f"/ops/runs/{run.pk}/", **HTMX)
    assert json.loads(finished["HX-Trigger"]) == {
        "runs-changed": {"run": run.pk, "state": "succeeded"}
    }
    fragment = html(client.get(_url(ops_job), **HTMX))
    assert _shown(fragment)[0] == run.pk
