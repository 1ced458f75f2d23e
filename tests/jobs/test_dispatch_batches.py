"""The dispatcher at scale (#12): a batch is the same few statements for one due job as for
fifty (claim, one INSERT ... ON CONFLICT DO NOTHING RETURNING, one UPDATE ... FROM, one
outbox INSERT), batches repeat until nothing is due or the time budget is spent, and two
dispatchers at once still make one run per job and moment."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bizdevops import outbox
from bizdevops.models import OutboxMessage
from jobs.models import Job, Run, RunState, Trigger
from jobs.services import EXECUTE_RUN, dispatch_due, job_register
from kpis.services import kpi_define
from tests.jobs.helpers import schedule_runs, set_next_run

pytestmark = pytest.mark.django_db

SECOND = dt.timedelta(seconds=1)
INTERVAL = dt.timedelta(seconds=60)
COMMITTED = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def due_jobs(initiative: Any, pm: Any, engineer: Any, count: int, at: dt.datetime) -> list[Job]:
    """`count` jobs (every minute) of `initiative`, all due at `at`."""
    jobs = [
        job_register(
            kpi=kpi_define(initiative=initiative, user=pm, name=f"Batch KPI {n}"),
            user=engineer,
            schedule_kind="interval",
            interval_seconds=60,
            source_kind="python",
            calculation="portfolio.initiatives_in_ops",
        )
        for n in range(count)
    ]
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(next_run_at=at)
    return jobs


def statements(queries: CaptureQueriesContext) -> list[str]:
    """What each query was: its verb and table (and a lock)."""
    kinds = []
    for query in queries.captured_queries:
        words = query["sql"].replace('"', "").split()
        if words[0] == "SELECT":
            kind = f"SELECT FROM {words[words.index('FROM') + 1]}"
            kinds.append(kind + (" FOR UPDATE" if "FOR UPDATE" in query["sql"] else ""))
        elif words[0] in ("INSERT", "DELETE"):
            kinds.append(" ".join(words[:3]))
        elif words[0] == "UPDATE":
            kinds.append(" ".join(words[:2]))
        else:
            kinds.append(words[0] if words[0] == "SAVEPOINT" else " ".join(words[:2]))
    return kinds


def run_messages() -> set[int]:
    """The runs whose message waits in the outbox (in these tests nothing relays them)."""
    rows = OutboxMessage.objects.filter(task=EXECUTE_RUN).values_list("args", flat=True)
    return {args[0] for args in rows}


class Sent:
    """`outbox.send` replaced (thread-safe): what would have been published."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, args: tuple[Any, ...], options: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append((name, args))

    def runs(self) -> list[int]:
        return [args[0] for name, args in self.messages if name == EXECUTE_RUN]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    fake = Sent()
    monkeypatch.setattr(outbox, "send", fake)
    return fake


# One batch: the same statements for one due job as for fifty


def test_a_batch_is_the_same_five_statements_for_one_due_job_as_for_fifty(
    ops_initiative, ops_job, pm, engineer
):
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    with CaptureQueriesContext(connection) as one:
        assert len(dispatch_due(now=now)) == 1

    later = now + dt.timedelta(hours=2)
    due_jobs(ops_initiative, pm, engineer, 50, later - SECOND)
    set_next_run(ops_job, later + dt.timedelta(hours=1))
    with CaptureQueriesContext(connection) as fifty:
        assert len(dispatch_due(now=later)) == 50

    # The savepoint pair is the transaction inside the test's. Before #12: 7 (the existing
    # runs read first, the jobs updated by bulk_update's CASE); before #11: 6 per job.
    claim = "SELECT FROM jobs_job" + (" FOR UPDATE" if connection.vendor == "postgresql" else "")
    assert (
        statements(one)
        == statements(fifty)
        == [
            "SAVEPOINT",
            claim,
            "INSERT INTO jobs_run",
            "UPDATE jobs_job",
            "INSERT INTO bizdevops_outboxmessage",
            "RELEASE SAVEPOINT",
        ]
    )


def test_the_relay_of_a_batch_is_the_same_statements_for_one_message_as_for_fifty(
    ops_initiative, ops_job, pm, engineer, sent, django_capture_on_commit_callbacks
):
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    with (
        CaptureQueriesContext(connection) as one,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert len(dispatch_due(now=now)) == 1

    later = now + dt.timedelta(hours=2)
    due_jobs(ops_initiative, pm, engineer, 50, later - SECOND)
    set_next_run(ops_job, later + dt.timedelta(hours=1))
    with (
        CaptureQueriesContext(connection) as fifty,
        django_capture_on_commit_callbacks(execute=True),
    ):
        created = dispatch_due(now=later)

    assert len(created) == 50
    assert sorted(sent.runs())[-50:] == sorted(created)
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    relay = [
        "SAVEPOINT",
        f"SELECT FROM bizdevops_outboxmessage{lock}",
        "DELETE FROM bizdevops_outboxmessage",
        "RELEASE SAVEPOINT",
    ]
    assert statements(one)[-4:] == statements(fifty)[-4:] == relay
    assert len(statements(one)) == len(statements(fifty))


def test_sqlite_splits_the_statements_at_its_parameter_limit(
    ops_initiative, ops_job, pm, engineer, monkeypatch
):
    # A limit small enough for a few jobs to need several statements (PostgreSQL sends two
    # arrays whatever the count, and ignores it).
    monkeypatch.setattr(connection.features, "max_query_params", 30)
    now = timezone.now()
    jobs = due_jobs(ops_initiative, pm, engineer, 12, now - SECOND)

    created = dispatch_due(now=now)

    assert len(created) == 12
    runs = Run.objects.filter(pk__in=created)
    assert sorted(runs.values_list("job_id", flat=True)) == sorted(job.pk for job in jobs)
    assert set(runs.values_list("scheduled_for", flat=True)) == {now - SECOND}
    assert set(
        Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("next_run_at", flat=True)
    ) == {now - SECOND + INTERVAL}


def test_the_inserted_run_has_the_values_a_saved_run_has(ops_job):
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    before = timezone.now()

    (run_id,) = dispatch_due(now=now)

    run = Run.objects.get(pk=run_id)
    assert (run.job_id, run.scheduled_for, run.trigger) == (ops_job.pk, now - SECOND, "schedule")
    assert (run.state, run.attempt, run.deliveries) == (RunState.QUEUED, 0, 1)
    assert (run.enqueued_at, run.started_at, run.finished_at) == (now, None, None)
    assert (run.value, run.error, run.worker, run.requested_by_id) == (None, "", "", None)
    assert before <= run.created_at <= timezone.now()


# ON CONFLICT: a run that exists for the moment


def test_a_run_that_exists_for_its_moment_is_skipped_and_its_job_still_advances(
    ops_initiative, ops_job, pm, engineer, django_capture_on_commit_callbacks
):
    now = timezone.now()
    due_at = now - SECOND
    others = due_jobs(ops_initiative, pm, engineer, 2, due_at)
    set_next_run(ops_job, due_at)
    # Another dispatcher made this run, but the job row still shows the old next_run_at.
    existing = Run.objects.create(job=ops_job, scheduled_for=due_at, trigger=Trigger.SCHEDULE)
    before = run_messages()

    with django_capture_on_commit_callbacks() as callbacks:
        created = dispatch_due(now=now)

    assert len(created) == 2
    assert sorted(Run.objects.filter(pk__in=created).values_list("job_id", flat=True)) == sorted(
        job.pk for job in others
    )
    assert [run.pk for run in schedule_runs(ops_job)] == [existing.pk]
    # A message for each new run only, none for the existing one.
    assert len(callbacks) == 2
    assert run_messages() - before == set(created)
    ops_job.refresh_from_db()
    assert ops_job.next_run_at == due_at + dt.timedelta(seconds=300)
    for job in others:
        job.refresh_from_db()
        assert job.next_run_at == due_at + INTERVAL


# Batches until nothing is due or the budget is spent


def test_more_due_jobs_than_a_batch_are_all_dispatched_in_one_call_within_the_budget(
    ops_initiative, pm, engineer, django_capture_on_commit_callbacks
):
    now = timezone.now()
    jobs = due_jobs(ops_initiative, pm, engineer, 5, now - SECOND)

    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks() as callbacks,
    ):
        created = dispatch_due(now=now, batch=2, budget=60)

    assert len(created) == len(set(created)) == 5
    assert sorted(Run.objects.filter(pk__in=created).values_list("job_id", flat=True)) == sorted(
        job.pk for job in jobs
    )
    assert len(callbacks) == 5
    # Batches of 2, 2 and 1: the short one shows nothing else is due, no fourth claim.
    claims = [kind for kind in statements(queries) if kind.startswith("SELECT FROM jobs_job")]
    assert len(claims) == 3
    assert statements(queries).count("SAVEPOINT") == 3  # a transaction each
    assert dispatch_due(now=now) == []


def test_a_spent_budget_returns_and_the_next_call_goes_on(ops_initiative, pm, engineer):
    now = timezone.now()
    jobs = due_jobs(ops_initiative, pm, engineer, 5, now - SECOND)

    calls = [dispatch_due(now=now, batch=2, budget=0) for _ in range(4)]

    assert [len(created) for created in calls] == [2, 2, 1, 0]
    created = [pk for call in calls for pk in call]
    assert sorted(Run.objects.filter(pk__in=created).values_list("job_id", flat=True)) == sorted(
        job.pk for job in jobs
    )
    assert Run.objects.filter(trigger=Trigger.SCHEDULE).count() == 5


def test_the_batch_and_the_budget_come_from_the_settings(settings, ops_initiative, pm, engineer):
    settings.KPI_DISPATCH_BATCH, settings.KPI_DISPATCH_BUDGET_SECONDS = 2, 0
    now = timezone.now()
    due_jobs(ops_initiative, pm, engineer, 3, now - SECOND)

    assert len(dispatch_due(now=now)) == 2
    assert len(dispatch_due(now=now)) == 1


def test_the_default_budget_is_under_the_beat_interval(settings):
    # A tick that outlasts the interval would queue the next one behind it.
    assert 0 < settings.KPI_DISPATCH_BUDGET_SECONDS < settings.KPI_DISPATCH_INTERVAL_SECONDS
    assert settings.KPI_DISPATCH_BATCH >= 500


# Two dispatchers at once (PostgreSQL: each thread has its own connection)


def dispatch_in_thread(results: dict[str, Any], name: str, start: threading.Barrier) -> None:
    try:
        start.wait()
        results[name] = dispatch_due(batch=3, budget=60)
    except BaseException as error:  # reported in the test's thread
        results[name] = error
    finally:
        connections.close_all()  # this thread's own connection


@COMMITTED
@pytest.mark.postgres
def test_two_dispatchers_at_once_make_one_run_per_job_and_moment(
    ops_initiative, pm, engineer, sent
):
    due_at = timezone.now() - SECOND
    jobs = due_jobs(ops_initiative, pm, engineer, 30, due_at)
    results: dict[str, Any] = {}
    start = threading.Barrier(2, timeout=20)

    threads = [
        threading.Thread(target=dispatch_in_thread, args=(results, name, start))
        for name in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads), "a dispatcher hangs"
    first, second = results["a"], results["b"]
    assert isinstance(first, list), first
    assert isinstance(second, list), second
    assert not set(first) & set(second), "both dispatchers created the same run"
    runs = Run.objects.filter(job__in=jobs)
    assert sorted(runs.values_list("pk", flat=True)) == sorted(first + second)
    assert sorted(runs.values_list("job_id", flat=True)) == sorted(job.pk for job in jobs)
    assert set(runs.values_list("scheduled_for", flat=True)) == {due_at}
    assert set(
        Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("next_run_at", flat=True)
    ) == {due_at + INTERVAL}
    # Each run's message sent once, after its batch committed; the outbox is empty.
    assert sorted(sent.runs()) == sorted(first + second)
    assert not OutboxMessage.objects.exists()


@COMMITTED
@pytest.mark.postgres
def test_jobs_another_dispatcher_holds_are_skipped_then_dispatched_by_the_next_call(
    ops_initiative, pm, engineer, sent
):
    due_at = timezone.now() - SECOND
    jobs = due_jobs(ops_initiative, pm, engineer, 6, due_at)
    held = jobs[:2]
    locked, release = threading.Event(), threading.Event()

    def other_dispatcher() -> None:
        # Another dispatcher, in the middle of its batch: these job rows are locked.
        try:
            from django.db import transaction

            with transaction.atomic():
                list(Job.objects.select_for_update().filter(pk__in=[job.pk for job in held]))
                locked.set()
                release.wait(20)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_dispatcher)
    thread.start()
    try:
        assert locked.wait(20)
        first = dispatch_due(batch=2, budget=60)
    finally:
        release.set()
        thread.join(20)
    rest = dispatch_due(batch=2, budget=60)

    job_of = dict(Run.objects.values_list("pk", "job_id"))
    assert sorted(job_of[pk] for pk in first) == sorted(job.pk for job in jobs[2:])
    assert sorted(job_of[pk] for pk in rest) == sorted(job.pk for job in held)
    assert Run.objects.filter(job__in=jobs).count() == 6
    assert sorted(sent.runs()) == sorted(first + rest)
