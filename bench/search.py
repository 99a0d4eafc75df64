"""Scenario 7: range queries (`GET /events`, `GET /calendar`) on a database
holding single and recurring events, one user among them with more recurring
public events than a query used to expand.

The population lives in a database of its own (lifytp_bench_search, or
..._quick_search), seeded afresh at the schema before the occurrences table.
With `--baseline REF` the system of that older commit (an export of it, run
with this checkout's .venv) is measured on it first; then this checkout's
migrations upgrade the same database (the backfill is timed) and this
checkout's system is measured. So "before" and "after" are the same data on
the same machine within minutes, and their ratio is the figure to read.
"""
import os
import random
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import create_engine, text

from bench import env

# The events revision before the occurrences table: the population is written
# there, as the code before it wrote events, and every later revision applies.
BEFORE_OCCURRENCES = "7c1d2e5f9a40"
WINDOW_START = datetime(2031, 3, 3, tzinfo=UTC)  # a Monday, inside every series below
RULES = ("FREQ=WEEKLY;COUNT=26", "FREQ=DAILY;COUNT=30", "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=40", "FREQ=MONTHLY;COUNT=12")
TIMEZONES = ("UTC", "Europe/Paris", "America/New_York")
FULL = {"users": 2000, "singles": 20_000, "series": 2000, "flood": 300, "joined": 40, "requests": 100, "walks": 5}
QUICK = {"users": 200, "singles": 1000, "series": 100, "flood": 250, "joined": 10, "requests": 5, "walks": 1}


def db_name(quick):
    return env.db_name(quick) + "_search"


def _database_env(quick):
    url = env.PG_SERVER + db_name(quick)
    return {"AUTH_DATABASE_URL": url, "EVENTS_DATABASE_URL": url, "MESSAGES_DATABASE_URL": url}


def _run_migrations(root, quick, events_revision=None, log=print):
    """Every service of the checkout at `root` to its head (events to
    events_revision if given), as its own migration command would."""
    code = ("import sys; from alembic import command; "
            "from services.shared.config import load_config; "
            "from services.shared.migrations import alembic_config, available_services, database_uri, ensure_schema; "
            "config = load_config(); target = sys.argv[1] or 'head'\n"
            "for service in available_services():\n"
            "    url = database_uri(config, service); ensure_schema(url, service)\n"
            "    command.upgrade(alembic_config(service, url), target if service == 'events' else 'head')\n")
    started = time.monotonic()
    subprocess.run([os.path.join(env.ROOT, ".venv", "bin", "python"), "-W", "ignore", "-c", code,
                    events_revision or ""], cwd=root, check=True, timeout=1800,
                   env=dict(os.environ, **_database_env(quick), LIFYTP_CONFIG=os.path.join(root, "config.yaml")))
    return round(time.monotonic() - started, 2)


# The population -----------------------------------------------------------------

def seed(quick, root, log=print):
    """A fresh database at `root`'s schema (events before the occurrences
    table) with the population; returns what it holds and who reads it."""
    from services.events import recurrence

    size = QUICK if quick else FULL
    name = db_name(quick)
    server = create_engine(env.PG_SERVER + "postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    _run_migrations(root, quick, None if root != env.ROOT else BEFORE_OCCURRENCES, log)
    engine = create_engine(env.PG_SERVER + name)
    rng = random.Random(7)
    with engine.begin() as connection:
        if connection.scalar(text("SELECT to_regclass('events.occurrences')")) is not None:
            raise RuntimeError("the baseline already has the occurrences table: give a commit before it")
        connection.execute(text("SELECT setseed(0.7)"))
        users = [row[0] for row in connection.execute(text("""
            INSERT INTO auth.users (id, email, username, display_name, bio, password_hash, is_active,
                                    created_at, updated_at)
            SELECT gen_random_uuid(), 's' || n || '@bench.example', 's' || n, 'Search User ' || n, '',
                   'not a hash', true, now(), now()
            FROM generate_series(1, :users) AS n RETURNING id"""), {"users": size["users"]})]
        users = sorted(str(user) for user in users)
        # Every follow list counts as copied: no RPC to auth on a range query.
        connection.execute(text("INSERT INTO events.follow_syncs (user_id, synced_at) "
                                "SELECT id, now() FROM auth.users"))
        connection.execute(text("""
            INSERT INTO events.events (id, organizer_id, title, description, location, is_online, visibility,
                                       status, timezone, starts_at, ends_at, series_ends_at, participants_count)
            SELECT gen_random_uuid(), (CAST(:users AS uuid[]))[1 + floor(random() * :count)::int], 'Bench event ' || g,
                   '', '', false,
                   CASE WHEN r < 0.7 THEN 'public' WHEN r < 0.9 THEN 'followers' ELSE 'private' END,
                   'active', 'UTC', s, s + interval '2 hours', s + interval '2 hours', 0
            FROM (SELECT g, random() AS r,
                         date_trunc('minute', CAST(:start AS timestamptz) - interval '30 days'
                                              + random() * interval '120 days') AS s
                  FROM generate_series(1, :singles) AS g) AS x"""),
            {"users": users, "count": len(users), "start": WINDOW_START, "singles": size["singles"]})
        flooder, organizer, reader, viewer = users[0], users[1], users[2], users[3]
        series = []
        for number in range(size["series"]):
            starts_at = WINDOW_START + timedelta(minutes=rng.randrange(-60 * 24 * 60, 60 * 24 * 30, 15))
            series.append({"organizer": organizer if number % 20 == 0 else rng.choice(users[4:]),
                           "title": f"Bench series {number}", "rule": RULES[number % len(RULES)],
                           "timezone": TIMEZONES[number % len(TIMEZONES)], "starts_at": starts_at,
                           "visibility": "public" if rng.random() < 0.7 else rng.choice(("followers", "private"))})
        for number in range(size["flood"]):
            # One user's series start before everyone else's and last through
            # every window: the old query's 200 series were all theirs.
            series.append({"organizer": flooder, "title": f"Flood {number}", "rule": "FREQ=DAILY;COUNT=100",
                           "timezone": "UTC", "starts_at": WINDOW_START - timedelta(days=61, minutes=-number),
                           "visibility": "public"})
        for values in series:
            last = recurrence.check_rule(values["rule"], values["starts_at"], values["timezone"])
            values.update(ends_at=values["starts_at"] + timedelta(hours=1), series_ends_at=last + timedelta(hours=1))
        connection.execute(text("""
            INSERT INTO events.events (id, organizer_id, title, description, location, is_online, visibility,
                                       status, timezone, starts_at, ends_at, rrule, series_ends_at,
                                       participants_count)
            VALUES (gen_random_uuid(), :organizer, :title, '', '', false, :visibility, 'active', :timezone,
                    :starts_at, :ends_at, :rule, :series_ends_at, 0)"""), series)
        joined = connection.execute(text("""
            INSERT INTO events.participants (event_id, user_id)
            SELECT id, :reader FROM events.events WHERE visibility = 'public' AND organizer_id <> :reader
            ORDER BY rrule IS NULL, id LIMIT :joined RETURNING event_id"""),
            {"reader": reader, "joined": size["joined"]}).all()
        connection.execute(text("UPDATE events.events SET participants_count = 1 WHERE id = ANY(CAST(:ids AS uuid[]))"),
                           {"ids": [str(row[0]) for row in joined]})
    for table in ("auth.users", "events.events", "events.participants", "events.follow_syncs"):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"VACUUM ANALYZE {table}"))
    engine.dispose()
    population = {"users": size["users"], "single_events": size["singles"], "series": size["series"],
                  "flood_series": size["flood"], "joined_by_reader": len(joined)}
    return population, {"flooder": flooder, "organizer": organizer, "reader": reader, "viewer": viewer}


def expected_occurrences(quick, viewer, window):
    """How many occurrences the viewer may see in the window, from the
    occurrences table (after the upgrade)."""
    engine = create_engine(env.PG_SERVER + db_name(quick))
    with engine.connect() as connection:
        count = connection.scalar(text("""
            SELECT count(*) FROM events.occurrences o JOIN events.events e ON e.id = o.event_id
            WHERE o.starts_at >= :lo AND o.starts_at < :hi AND e.status = 'active'
              AND (e.visibility = 'public' OR e.organizer_id = :viewer
                   OR EXISTS (SELECT 1 FROM events.participants p WHERE p.event_id = e.id AND p.user_id = :viewer))
        """), {"lo": window[0], "hi": window[1], "viewer": viewer})
        total = connection.scalar(text("SELECT count(*) FROM events.occurrences"))
    engine.dispose()
    return count, total


# Measuring -------------------------------------------------------------------------

def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def queries(people, week, month):
    """(name, reader, path, params) of the range queries measured."""
    return [
        ("week, first page", "viewer", "/events", {"from": _iso(week[0]), "to": _iso(week[1]), "limit": 20}),
        ("30 days, one organizer", "viewer", "/events", {"from": _iso(month[0]), "to": _iso(month[1]), "limit": 20,
                                                          "organizer_id": people["organizer"]}),
        ("30 days, title search", "viewer", "/events", {"from": _iso(month[0]), "to": _iso(month[1]), "limit": 20,
                                                         "q": "series 12"}),
        ("30 days, my calendar", "reader", "/calendar", {"from": _iso(month[0]), "to": _iso(month[1]), "limit": 20}),
    ]


def _percentile(values, q):
    ordered = sorted(values)
    return round(ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))], 2)


def measure(base_url, pid, tokens, people, week, month, size):
    """Closed loop, one request at a time: p50/p99 and the system process's
    CPU per request of each query (the steadier figure on a shared machine),
    and whole walks of the week (every page, limit 100) with what they found."""
    sessions = {}
    for role in ("viewer", "reader"):
        sessions[role] = requests.Session()
        sessions[role].headers["Authorization"] = "Bearer " + tokens[role]
    found = {}
    for name, role, path, params in queries(people, week, month):
        for _ in range(3):
            sessions[role].get(base_url + path, params=params, timeout=120)
        latencies, errors = [], 0
        cpu_before = env.cpu_seconds(pid)
        for _ in range(size["requests"]):
            started = time.perf_counter()
            answer = sessions[role].get(base_url + path, params=params, timeout=120)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += answer.status_code != 200
        found[name] = {"requests": len(latencies), "errors": errors, "p50_ms": _percentile(latencies, 0.5),
                       "p99_ms": _percentile(latencies, 0.99),
                       "cpu_ms": round(1000 * (env.cpu_seconds(pid) - cpu_before) / len(latencies), 2)}
    return {"queries": found, "walk": _walks(base_url, pid, sessions["viewer"], week, size["walks"])}


def _walks(base_url, pid, session, week, count):
    """Every page of the week, `count` times: time and CPU per page, and what
    the last walk found."""
    cpu_before, seconds, pages, keys = env.cpu_seconds(pid), 0.0, 0, []
    for _ in range(count):
        keys, cursor = [], None
        started = time.perf_counter()
        while True:
            params = {"from": _iso(week[0]), "to": _iso(week[1]), "limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = session.get(base_url + "/events", params=params, timeout=120).json()
            keys += [(item["starts_at"], item["id"]) for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        seconds += time.perf_counter() - started
    return {"walks": count, "pages": pages // count, "items": len(keys), "distinct": len(set(keys)),
            "in_order": keys == sorted(keys), "ms_per_page": round(1000 * seconds / pages, 2),
            "cpu_ms_per_page": round(1000 * (env.cpu_seconds(pid) - cpu_before) / pages, 2)}


def _measure_system(label, root, quick, log_dir, tokens, people, week, month, size, log):
    # Range queries keep nothing in Redis: its database is left as it is.
    env.reset_vhost(env.vhost_name(quick, "_search"))
    system = env.System("one", quick, log_dir, root=root, **_database_env(quick),
                        AMQP_URI=env.amqp_uri(env.vhost_name(quick, "_search")),
                        LIFYTP_CONFIG=os.path.join(root, "config.yaml"))
    try:
        found = measure(system.routes["events"], system.processes[0].pid, tokens, people, week, month, size)
    finally:
        system.stop()
        env.delete_vhost(env.vhost_name(quick, "_search"))
    for name, value in found["queries"].items():
        log(f"  {label} {name}: p50 {value['p50_ms']} ms, CPU {value['cpu_ms']} ms")
    walk = found["walk"]
    log(f"  {label} week, every page: {walk['items']} items in {walk['pages']} pages, {walk['ms_per_page']} ms "
        f"and CPU {walk['cpu_ms_per_page']} ms per page")
    return found


def _ratios(before, after):
    """after/before of each figure the two share."""
    return {"queries": {name: {key: round(after["queries"][name][key] / value, 3)
                               for key, value in figures.items() if key in ("p50_ms", "cpu_ms") and value}
                        for name, figures in before["queries"].items()},
            "walk": {key: round(after["walk"][key] / before["walk"][key], 3)
                     for key in ("ms_per_page", "cpu_ms_per_page") if before["walk"][key]}}


def range_queries(quick, log_dir, sign, baseline=None, log=print):
    """Scenario 7; `sign(users)` gives each user a token."""
    size = QUICK if quick else FULL
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    root, commit = env.export_commit(baseline) if baseline else (env.ROOT, None)
    try:
        population, people = seed(quick, root, log)
        signed = sign([{"id": people["viewer"]}, {"id": people["reader"]}])
        tokens = {"viewer": signed[0]["token"], "reader": signed[1]["token"]}
        week = (WINDOW_START + timedelta(days=7), WINDOW_START + timedelta(days=14))
        month = (WINDOW_START, WINDOW_START + timedelta(days=30))
        systems = {}
        if baseline:
            systems["before"] = _measure_system("before", root, quick, log_dir, tokens, people, week, month, size,
                                                log)
        backfill_s = _run_migrations(env.ROOT, quick, log=log)
        systems["after"] = _measure_system("after", env.ROOT, quick, log_dir, tokens, people, week, month, size, log)
    finally:
        if baseline:
            shutil.rmtree(root, ignore_errors=True)
    expected, occurrence_rows = expected_occurrences(quick, people["viewer"], week)
    result = {"started_at": started_at, "baseline": commit, "population": population, "backfill_s": backfill_s,
              "occurrence_rows": occurrence_rows, "expected_week_occurrences": expected, "systems": systems}
    if "before" in systems:
        result["ratios"] = _ratios(systems["before"], systems["after"])
    return result
