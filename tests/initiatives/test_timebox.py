from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from initiatives.models import TIMEBOX_DEFAULT_WEEKS, Initiative, Phase
from initiatives.services import initiative_update
from phases.models import Decision
from tests.factories import decide

pytestmark = pytest.mark.django_db


def _move_dev_start(initiative: Initiative, started_at: dt.datetime) -> Initiative:
    Initiative.objects.filter(pk=initiative.pk).update(dev_started_at=started_at)
    initiative.refresh_from_db()
    return initiative


def test_no_timebox_in_biz(initiative):
    assert initiative.phase == Phase.BIZ
    assert initiative.dev_started_at is None
    assert initiative.dev_due_at is None
    assert initiative.dev_days_left is None
    assert initiative.dev_overdue is False


def test_entering_dev_starts_the_timebox(ready_initiative, pm):
    before = timezone.now()

    initiative = decide(ready_initiative, Decision.GO, pm)

    assert initiative.phase == Phase.DEV
    assert initiative.dev_started_at is not None
    assert before <= initiative.dev_started_at <= timezone.now()
    assert initiative.dev_due_at == initiative.dev_started_at + dt.timedelta(
        weeks=TIMEBOX_DEFAULT_WEEKS
    )


def test_days_left_on_entry_equal_the_timebox(dev_initiative):
    assert dev_initiative.dev_days_left == TIMEBOX_DEFAULT_WEEKS * 7 == 42
    assert dev_initiative.dev_overdue is False


@pytest.mark.parametrize("weeks", [1, 3, 12])
def test_days_left_follow_the_chosen_timebox(ready_initiative, pm, weeks):
    initiative_update(initiative=ready_initiative, user=pm, dev_timebox_weeks=weeks)

    initiative = decide(ready_initiative, Decision.GO, pm)

    assert initiative.dev_days_left == weeks * 7


def test_changing_the_timebox_in_dev_moves_the_due_date(dev_initiative, pm):
    initiative_update(initiative=dev_initiative, user=pm, dev_timebox_weeks=3)

    dev_initiative.refresh_from_db()
    assert dev_initiative.dev_days_left == 21


def test_days_left_count_down(dev_initiative):
    started = timezone.now() - dt.timedelta(days=10, hours=1)

    initiative = _move_dev_start(dev_initiative, started)

    assert initiative.dev_days_left == 42 - 10
    assert initiative.dev_overdue is False


def test_last_hour_of_the_timebox_is_not_overdue(dev_initiative):
    started = timezone.now() - dt.timedelta(weeks=TIMEBOX_DEFAULT_WEEKS) + dt.timedelta(hours=1)

    initiative = _move_dev_start(dev_initiative, started)

    assert initiative.dev_days_left == 1
    assert initiative.dev_overdue is False


def test_overdue_days_are_negative(dev_initiative):
    started = timezone.now() - dt.timedelta(weeks=TIMEBOX_DEFAULT_WEEKS, days=3, hours=1)

    initiative = _move_dev_start(dev_initiative, started)

    assert initiative.dev_days_left == -3
    assert initiative.dev_overdue is True


def test_overdue_as_soon_as_the_timebox_has_passed(dev_initiative):
    # Due an hour ago: the timebox is over, so the initiative is overdue.
    started = timezone.now() - dt.timedelta(weeks=TIMEBOX_DEFAULT_WEEKS, hours=1)

    initiative = _move_dev_start(dev_initiative, started)

    assert initiative.dev_due_at < timezone.now()
    assert initiative.dev_overdue is True


def test_timebox_keeps_counting_on_hold(dev_initiative, pm):
    _move_dev_start(dev_initiative, timezone.now() - dt.timedelta(weeks=7))

    initiative = decide(dev_initiative, Decision.HOLD, pm)

    assert initiative.dev_overdue is True


def test_no_timebox_in_ops(ops_initiative):
    assert ops_initiative.phase == Phase.OPS
    assert ops_initiative.dev_due_at is None
    assert ops_initiative.dev_days_left is None
    assert ops_initiative.dev_overdue is False


def test_no_timebox_after_recycle_to_biz(dev_initiative, pm):
    _move_dev_start(dev_initiative, timezone.now() - dt.timedelta(weeks=10))

    initiative = decide(dev_initiative, Decision.RECYCLE, pm)

    assert initiative.phase == Phase.BIZ
    assert initiative.dev_days_left is None
    assert initiative.dev_overdue is False


def test_recycle_from_ops_restarts_the_timebox(ops_initiative, pm):
    long_ago = timezone.now() - dt.timedelta(weeks=10)
    _move_dev_start(ops_initiative, long_ago)

    initiative = decide(ops_initiative, Decision.RECYCLE, pm)

    assert initiative.phase == Phase.DEV
    assert initiative.dev_started_at > long_ago
    assert initiative.dev_days_left == TIMEBOX_DEFAULT_WEEKS * 7
    assert initiative.dev_overdue is False


def test_no_timebox_once_cancelled_in_dev(dev_initiative, pm):
    initiative = decide(dev_initiative, Decision.KILL, pm)
    assert initiative.phase == Phase.DEV
    assert initiative.dev_days_left is None
    assert initiative.dev_overdue is False
