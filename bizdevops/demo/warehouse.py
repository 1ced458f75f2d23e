"""The demo warehouse: a SQLite file with card transactions, customer events and machine
sensor readings, for the demo's KPI jobs. `tick` appends the minutes since the last row, so
the KPIs computed from it move while a user watches (`make run` schedules it every minute)."""

from __future__ import annotations

import datetime as dt
import math
import random
import sqlite3
from contextlib import closing
from pathlib import Path

from django.conf import settings
from django.utils import timezone

SCHEMA = """
CREATE TABLE IF NOT EXISTS card_transactions (
    id INTEGER PRIMARY KEY, ts TEXT NOT NULL, amount REAL NOT NULL,
    is_fraud INTEGER NOT NULL, flagged INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS card_transactions_ts ON card_transactions (ts);
CREATE TABLE IF NOT EXISTS customer_events (
    id INTEGER PRIMARY KEY, ts TEXT NOT NULL, customer_id INTEGER NOT NULL, event TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS customer_events_ts ON customer_events (ts);
CREATE TABLE IF NOT EXISTS sensor_readings (
    id INTEGER PRIMARY KEY, ts TEXT NOT NULL, machine TEXT NOT NULL, vibration REAL NOT NULL,
    temperature REAL NOT NULL, unplanned_stop INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sensor_readings_ts ON sensor_readings (ts);
"""

HISTORY = dt.timedelta(days=2)
TS_FORMAT = "%Y-%m-%d %H:%M:%S"  # the format of SQLite's datetime('now', ...)

# The demo jobs' queries: windows relative to now, so the values move as rows arrive.
FRAUD_CAUGHT_SQL = (
    "SELECT 100.0 * SUM(CASE WHEN flagged = 1 AND is_fraud = 1 THEN 1 ELSE 0 END) "
    "/ MAX(1, SUM(is_fraud)) FROM card_transactions "
    "WHERE ts >= datetime('now', '-60 minutes')"
)
FALSE_ALARM_SQL = (
    "SELECT 100.0 * SUM(CASE WHEN flagged = 1 AND is_fraud = 0 THEN 1 ELSE 0 END) "
    "/ MAX(1, SUM(flagged)) FROM card_transactions "
    "WHERE ts >= datetime('now', '-60 minutes')"
)
CHURN_SQL = (
    "SELECT 100.0 * SUM(CASE WHEN event = 'churned' THEN 1 ELSE 0 END) / MAX(1, COUNT(*)) "
    "FROM customer_events WHERE ts >= datetime('now', '-24 hours')"
)
DOWNTIME_SQL = (
    "SELECT SUM(unplanned_stop) / 6.0 FROM sensor_readings WHERE ts >= datetime('now', '-24 hours')"
)


def path() -> Path:
    return Path(settings.DEMO_WAREHOUSE_PATH)


def url() -> str:
    return f"sqlite:///{path().resolve()}"


# What the rows are drawn from, shared with `history` (the demo's seeded KPI histories), so
# that the values the jobs compute lie in the band the history shows: no jump to another
# status when the jobs start.
CARDS_PER_MINUTE = (30, 60)
FRAUD_SHARE = 0.04
FALSE_FLAG_SHARE = 0.003  # of the legitimate payments: about 9 % of the flagged ones
EVENTS_PER_MINUTE = (1, 4)
CHURN_SHARE = 0.0075
MACHINES = 6
STOP_CHANCE = 0.0012  # per machine and minute: about 1.7 hours of stops a day


def catch_rate(moment: dt.datetime) -> float:
    """Fraud detection slowly improves during the day (UTC): 76 % at midnight, 86 % late."""
    return 0.76 + 0.10 * (moment.astimezone(dt.UTC).hour / 23)


def _rows_for_minute(minute: dt.datetime) -> tuple[list[tuple], list[tuple], list[tuple]]:
    rng = random.Random(int(minute.timestamp()))  # noqa: S311  (demo data, not security)
    ts = minute.strftime(TS_FORMAT)
    catch = catch_rate(minute)
    cards = []
    for _ in range(rng.randint(*CARDS_PER_MINUTE)):
        fraud = rng.random() < FRAUD_SHARE
        flagged = rng.random() < (catch if fraud else FALSE_FLAG_SHARE)
        cards.append((ts, round(rng.uniform(3, 900), 2), int(fraud), int(flagged)))
    events = [
        (ts, rng.randint(1, 50_000), "churned" if rng.random() < CHURN_SHARE else "active")
        for _ in range(rng.randint(*EVENTS_PER_MINUTE))
    ]
    sensors = [
        (
            ts,
            f"CNC-{machine:02d}",
            round(rng.gauss(3.0, 0.6), 3),
            round(rng.gauss(61, 4), 2),
            int(rng.random() < STOP_CHANCE),
        )
        for machine in range(1, MACHINES + 1)
    ]
    return cards, events, sensors


def _binomial(rng: random.Random, n: int, p: float) -> int:
    # The normal approximation (n is in the thousands here): Python 3.11 has no binomialvariate.
    draw = round(rng.gauss(n * p, math.sqrt(max(n * p * (1 - p), 1e-9))))
    return min(max(draw, 0), n)


def _mean(bounds: tuple[int, int]) -> float:
    return (bounds[0] + bounds[1]) / 2


def history(metric: str, moment: dt.datetime, rng: random.Random) -> float:
    """A value the job of `metric` (FRAUD_CAUGHT_SQL, ...) would have computed at `moment`,
    drawn from the same rates as the rows (without writing a month of rows): the seeded
    history of the demo's KPIs."""
    if metric in (FRAUD_CAUGHT_SQL, FALSE_ALARM_SQL):
        cards = round(61 * _mean(CARDS_PER_MINUTE))  # the 60-minute window holds 61 minutes
        frauds = max(1, _binomial(rng, cards, FRAUD_SHARE))
        caught = _binomial(rng, frauds, catch_rate(moment - dt.timedelta(minutes=30)))
        if metric == FRAUD_CAUGHT_SQL:
            return 100.0 * caught / frauds
        false_flags = _binomial(rng, cards - frauds, FALSE_FLAG_SHARE)
        return 100.0 * false_flags / max(1, false_flags + caught)
    day = 24 * 60 + 1
    if metric == CHURN_SQL:
        events = round(day * _mean(EVENTS_PER_MINUTE))
        return 100.0 * _binomial(rng, events, CHURN_SHARE) / events
    if metric == DOWNTIME_SQL:
        return _binomial(rng, day * MACHINES, STOP_CHANCE) / 6.0
    raise ValueError(f"No history model for {metric!r}.")


def tick(now: dt.datetime | None = None) -> int:
    """Append rows for every whole minute since the last one (at most HISTORY back).
    Idempotent: a minute is written once. Returns the minutes added."""
    now = (now or timezone.now()).astimezone(dt.UTC).replace(second=0, microsecond=0)
    path().parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path())) as db, db:
        db.executescript(SCHEMA)
        last = db.execute("SELECT MAX(ts) FROM card_transactions").fetchone()[0]
        start = now - HISTORY
        if last:
            start = max(start, dt.datetime.strptime(last, TS_FORMAT).replace(tzinfo=dt.UTC))
            start += dt.timedelta(minutes=1)
        minutes = 0
        minute = start
        while minute <= now:
            cards, events, sensors = _rows_for_minute(minute)
            db.executemany(
                "INSERT INTO card_transactions (ts, amount, is_fraud, flagged) VALUES (?,?,?,?)",
                cards,
            )
            db.executemany(
                "INSERT INTO customer_events (ts, customer_id, event) VALUES (?,?,?)", events
            )
            db.executemany(
                "INSERT INTO sensor_readings (ts, machine, vibration, temperature, unplanned_stop)"
                " VALUES (?,?,?,?,?)",
                sensors,
            )
            minute += dt.timedelta(minutes=1)
            minutes += 1
        cutoff = (now - HISTORY).strftime(TS_FORMAT)
        for table in ("card_transactions", "customer_events", "sensor_readings"):
            db.execute(f"DELETE FROM {table} WHERE ts < ?", [cutoff])  # noqa: S608  (fixed names)
    return minutes
