from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, models, transaction

from initiatives.models import Handover
from initiatives.services import initiative_hand_over
from notifications.models import Alert, Event
from notifications.services import alert_record
from phases.models import GateDecision
from phases.services import gate_decide

# Every history table, with a way to write one row through its service and a text column to
# try to rewrite. tests/bizdevops/test_runtime_role.py tries the same tables as the runtime
# database role on PostgreSQL.
HISTORY: dict[str, tuple[type[models.Model], str, Callable[..., models.Model]]] = {
    "decision": (
        GateDecision,
        "rationale",
        lambda initiative, pm, other_pm: gate_decide(
            initiative=initiative, decision="hold", rationale="Wait", user=pm
        ),
    ),
    "handover": (
        Handover,
        "reason",
        lambda initiative, pm, other_pm: initiative_hand_over(
            initiative=initiative, to=other_pm, reason="Leave", user=pm
        ),
    ),
    "alert": (
        Alert,
        "message",
        lambda initiative, pm, other_pm: alert_record(
            kind="kpi_status",
            message="Fraud caught is red",
            recipients=[pm.pk],
            event=Event.KPI_STATUS_CHANGED,
            payload={},
        ),
    ),
}


@pytest.fixture(params=sorted(HISTORY))
def history_row(request: pytest.FixtureRequest, initiative: Any, pm: Any, other_pm: Any) -> Any:
    model, column, make = HISTORY[request.param]
    row = make(initiative, pm, other_pm)
    return model, column, row, getattr(row, column)


def _unchanged(history_row: Any) -> None:
    model, column, row, before = history_row
    assert model.objects.filter(pk=row.pk).values_list(column, flat=True).get() == before


def test_database_refuses_a_queryset_update(history_row):
    model, column, row, _ = history_row
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        model.objects.filter(pk=row.pk).update(**{column: "Rewritten"})
    _unchanged(history_row)


def test_database_refuses_a_queryset_delete(history_row):
    model, _, row, _ = history_row
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        model.objects.filter(pk=row.pk).delete()
    _unchanged(history_row)


def test_database_refuses_raw_sql_update_and_delete(history_row):
    model, column, row, _ = history_row
    table = connection.ops.quote_name(model._meta.db_table)
    for sql, params in (
        (f"UPDATE {table} SET {column} = %s WHERE id = %s", ["Rewritten", row.pk]),  # noqa: S608
        (f"DELETE FROM {table} WHERE id = %s", [row.pk]),  # noqa: S608
    ):
        with (
            pytest.raises(IntegrityError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
    _unchanged(history_row)


def test_history_models_are_exactly_the_append_only_ones():
    from bizdevops.history import history_models

    assert set(history_models()) == {model for model, _, _ in HISTORY.values()}


@pytest.mark.django_db
def test_every_history_table_has_its_triggers():
    """The test database is built by running every migration, so a later migration that
    rebuilt a history table on SQLite (which drops its triggers) fails this test."""
    with connection.cursor() as cursor:
        for model, _, _ in HISTORY.values():
            table = model._meta.db_table
            if connection.vendor == "sqlite":
                cursor.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                    [table],
                )
                expected = {f"{table}_no_update", f"{table}_no_delete"}
            else:
                cursor.execute(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass"
                    " AND NOT tgisinternal AND tgenabled = 'O'",
                    [table],
                )
                expected = {f"{table}_append_only", f"{table}_no_truncate"}
            assert {name for (name,) in cursor.fetchall()} == expected, table


def test_deleting_what_history_refers_to_is_protected():
    """A cascade (or SET NULL) into a history table would be an UPDATE or DELETE the
    triggers refuse: an admin delete would end in a database error instead of Django's
    "cannot delete, these rows refer to it" page."""
    for model, _, _ in HISTORY.values():
        for field in model._meta.get_fields():
            if (field.many_to_one or field.one_to_one) and field.concrete:
                assert field.remote_field.on_delete is models.PROTECT, (model, field.name)


@pytest.mark.postgres
def test_database_refuses_to_rewrite_decisions(initiative, pm):
    record = gate_decide(initiative=initiative, decision="hold", rationale="Wait", user=pm)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        GateDecision.objects.filter(pk=record.pk).update(rationale="Rewritten")
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM phases_gatedecision WHERE id = %s", [record.pk])
    record.refresh_from_db()
    assert record.rationale == "Wait"


@pytest.mark.postgres
def test_database_refuses_to_rewrite_handovers(initiative, pm, other_pm):
    handover = initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Handover.objects.filter(pk=handover.pk).update(reason="Rewritten")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Handover.objects.filter(pk=handover.pk).delete()
    assert Handover.objects.get(pk=handover.pk).reason == "Leave"


def test_flush_empties_history_and_keeps_its_triggers(history_row):
    """`manage.py flush` (what every transactional test runs afterwards) resets the whole
    database, history included: on PostgreSQL it truncates as the owner, on SQLite the
    triggers are lifted for its transaction only."""
    model, _, _, _ = history_row
    if connection.vendor == "postgresql":
        # Inside the test's transaction: PostgreSQL truncates no table with pending
        # (deferred) foreign key checks.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    call_command("flush", interactive=False, verbosity=0)

    assert not model.objects.exists()
    test_every_history_table_has_its_triggers()
