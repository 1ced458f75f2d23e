"""The queues (docs/reliability.md): everything beat sends goes to `control`, which no run or
delivery shares, so a backlog of runs can never delay or expire a control message; runs,
webhook deliveries and e-mails have queues of their own."""

from __future__ import annotations

from bizdevops.celery import app

CONTROL = {
    "jobs.tasks.dispatch",
    "jobs.tasks.reap",
    "notifications.tasks.reap_deliveries",
    "bizdevops.tasks.outbox_relay",
}


def queue_of(task: str) -> str:
    return str(app.amqp.router.route({}, task)["queue"].name)


def test_every_task_beat_sends_is_on_the_control_queue():
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert tasks >= CONTROL
    assert {task: queue_of(task) for task in tasks} == dict.fromkeys(tasks, "control")


def test_runs_webhooks_and_mails_have_queues_of_their_own():
    assert queue_of("jobs.tasks.execute_run") == "runs"
    assert queue_of("notifications.tasks.deliver_webhook") == "webhooks"
    assert queue_of("notifications.tasks.send_alert_email") == "notifications"
    assert queue_of("some.unrouted.task") == "runs"  # the default queue is not `control`


def test_a_worker_without_queues_consumes_all_four():
    assert set(app.amqp.queues) == {"control", "runs", "webhooks", "notifications"}


def test_control_messages_expire_but_not_before_their_next_one_is_due():
    for entry in app.conf.beat_schedule.values():
        assert entry["options"]["expires"] >= 2 * float(entry["schedule"])
