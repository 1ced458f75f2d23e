"""The demo warehouse: a SQLite file with card transactions, customer events and machine
sensor readings, for the demo's KPI jobs. `tick` appends the minutes since the last row, so
the KPIs computed from it move while a user watches (`make run` schedules it every minute)."""

from __future__ import annotations

import datetime as dt
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


def _rows_for_minute(minute: dt.datetime) -> tuple[list[tuple], list[tuple], list[tuple]]:
    rng = random.Random(int(minute.timestamp()))  # noqa: S311  (demo data, not security)
    ts = minute.strftime(TS_FORMAT)
    # Fraud detection slowly improves during the day; a few false alarms.
    catch_rate = 0.72 + 0.15 * (minute.hour / 23)
    cards = []
    for _ in range(rng.randint(3, 8)):
        fraud = rng.random() < 0.04
        flagged = rng.random() < (catch_rate if fraud else 0.012)
        cards.append((ts, round(rng.uniform(3, 900), 2), int(fraud), int(flagged)))
    events = [
        (ts, rng.randint(1, 50_000), "churned" if rng.random() < 0.009 else "active")
        for _ in range(rng.randint(1, 4))
    ]
    sensors = [
        (
            ts,
            f"CNC-{machine:02d}",
            round(rng.gauss(3.0, 0.6), 3),
            round(rng.gauss(61, 4), 2),
            int(rng.random() < 0.002),
        )
        for machine in range(1, 7)
    ]
    return cards, events, sensors


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
