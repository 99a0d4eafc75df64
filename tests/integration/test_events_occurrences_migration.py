"""The migration that brought the occurrences table, on a database of its own
in the real PostgreSQL: it upgrades a database that already holds single and
recurring events, range queries then find every occurrence, and it goes back
down to the schema before it."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from services.events import recurrence, schedule
from services.shared.migrations import alembic_config, ensure_schema
from tests.conftest import TEST_DB_URL, TEST_NAME

pytestmark = pytest.mark.integration

BEFORE = "7c1d2e5f9a40"  # deleted users: the revision before occurrences
OCCURRENCES = "4b8e61d0c2f7"
SERVER = TEST_DB_URL.rsplit("/", 1)[0]


@pytest.fixture
def database():
    """An empty database, dropped afterwards; yields its URL."""
    name = f"{TEST_NAME}_occurrences_migration"
    server = create_engine(SERVER + "/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER}/{name}"
    ensure_schema(url, "events")
    yield url
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def insert_event(connection, organizer_id, starts_at, rrule=None, timezone="UTC", status="active",
                 visibility="public"):
    """An event row as the code before the migration wrote it."""
    event_id = str(uuid.uuid4())
    ends_at = starts_at + timedelta(hours=2)
    last_start = recurrence.check_rule(rrule, starts_at, timezone) if rrule else starts_at
    connection.execute(text("""
        INSERT INTO events.events (id, organizer_id, title, description, location, is_online, visibility, status,
                                   timezone, starts_at, ends_at, rrule, series_ends_at, participants_count)
        VALUES (:id, :organizer, 'Old event', '', '', false, :visibility, :status, :timezone, :starts_at, :ends_at,
                :rrule, :series_ends_at, 0)"""), {
        "id": event_id, "organizer": organizer_id, "visibility": visibility, "status": status,
        "timezone": timezone, "starts_at": starts_at, "ends_at": ends_at, "rrule": rrule,
        "series_ends_at": last_start + timedelta(hours=2)})
    return event_id


def occurrence_rows(connection):
    rows = connection.execute(text("SELECT event_id::text, starts_at FROM events.occurrences")).all()
    return sorted((starts_at, event_id) for event_id, starts_at in rows)


def test_upgrade_fills_occurrences_of_existing_events_and_downgrade_removes_them(database):
    config = alembic_config("events", database)
    command.upgrade(config, BEFORE)
    engine = create_engine(database)
    ann, bob, viewer = (str(uuid.uuid4()) for _ in range(3))
    monday = datetime(2031, 3, 3, 17, tzinfo=UTC)
    with engine.begin() as connection:
        paris = insert_event(connection, ann, monday, "FREQ=WEEKLY;COUNT=6", timezone="Europe/Paris")
        # A series of 500 occurrences, the cap: all of them are written.
        capped = insert_event(connection, bob, monday + timedelta(minutes=5), "FREQ=DAILY")
        once = insert_event(connection, bob, monday + timedelta(days=2))
        cancelled = insert_event(connection, ann, monday + timedelta(hours=1), "FREQ=DAILY;COUNT=3",
                                 status="cancelled")
        private = insert_event(connection, bob, monday, "FREQ=WEEKLY;COUNT=2", visibility="private")
        # A rule stored before the stricter checks, which expansion now refuses.
        broken = insert_event(connection, ann, monday + timedelta(days=1), None)
        connection.execute(text("UPDATE events.events SET rrule = 'FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31' "
                                "WHERE id = :id"), {"id": broken})
        connection.execute(text("INSERT INTO events.participants (event_id, user_id) VALUES (:e, :u)"),
                           {"e": private, "u": viewer})

    command.upgrade(config, OCCURRENCES)

    expected = sorted(
        [(start, paris) for start in recurrence.expand("FREQ=WEEKLY;COUNT=6", monday, "Europe/Paris")]
        + [(start, capped) for start in recurrence.expand("FREQ=DAILY", monday + timedelta(minutes=5), "UTC")]
        + [(monday + timedelta(days=2), once)]
        + [(monday + timedelta(hours=1, days=day), cancelled) for day in range(3)]
        + [(monday + timedelta(weeks=week), private) for week in range(2)]
        + [(monday + timedelta(days=1), broken)])
    with engine.connect() as connection:
        assert occurrence_rows(connection) == expected
        assert sum(1 for _, event_id in expected if event_id == capped) == recurrence.MAX_OCCURRENCES
        assert connection.scalar(text("SELECT to_regclass('events.ix_events_span')")) is None

    # Range queries over the upgraded database: every page, in order. They are
    # today's queries, which read what later revisions add (blocks, removals).
    command.upgrade(config, "head")
    window = (monday, monday + timedelta(days=60))
    visible = [key for key in expected if window[0] <= key[0] < window[1] and key[1] != cancelled]
    with Session(engine) as session:
        assert walk(session, schedule.search_filters(viewer), window, limit=7) == visible
        calendar = [key for key in expected if key[1] == private and window[0] <= key[0] < window[1]]
        assert walk(session, schedule.calendar_filters(viewer), window, limit=1) == calendar

    command.downgrade(config, BEFORE)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT to_regclass('events.occurrences')")) is None
        assert connection.scalar(text("SELECT to_regclass('events.ix_events_span')")) is not None
        assert connection.scalar(text("SELECT count(*) FROM events.events")) == 6
    command.upgrade(config, OCCURRENCES)
    with engine.connect() as connection:
        assert occurrence_rows(connection) == expected
    engine.dispose()


def walk(session, filters, window, limit):
    """(start, event id) of every page of a range query, cursor to cursor."""
    keys, after = [], None
    while True:
        found = schedule.occurrences(session, filters, window[0], window[1], after, limit)
        page = [(start, event.id) for start, event in found[:limit]]
        keys += page
        if len(found) <= limit:
            session.commit()
            return keys
        after = page[-1]
