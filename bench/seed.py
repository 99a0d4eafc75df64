"""Seed a population straight into the services' own tables, in SQL.

The services' migrations create the tables; then generate_series fills them:
users (auth.users), a skewed follow graph (auth.follows, copied into the events
service's replica events.follows and marked fresh in events.follow_syncs),
events, media and posts. A million posts take about a minute; a seeded
database is kept and reused while its size matches (table bench.meta).

The follow graph: each user's out-degree is log-normal (median about 25, mean
about 40, as in the DeathStarBench social graphs), and whom they follow is
skewed toward popular accounts (low user numbers), so a few users have
thousands of followers. Post authorship is skewed the same way. Four extra
users follow exactly 10, 100, 1,000 and 5,000 people (the feed-scaling
scenario).
"""
import json
import time

import bcrypt
from sqlalchemy import create_engine, text

from bench import env

PASSWORD = "bench password 1"
FEED_FOLLOWING = (10, 100, 1000, 5000)

FULL = {"users": 10_000, "posts": 1_000_000, "events": 20_000}
QUICK = {"users": 1_000, "posts": 20_000, "events": 1_000}


def _server_engine():
    return create_engine(env.PG_SERVER + "postgres", isolation_level="AUTOCOMMIT")


def ensure_database(name):
    engine = _server_engine()
    with engine.connect() as connection:
        if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def seeded_size(engine):
    with engine.connect() as connection:
        if not connection.scalar(text("SELECT to_regclass('bench.meta') IS NOT NULL")):
            return None
        value = connection.scalar(text("SELECT value FROM bench.meta WHERE key = 'size'"))
        return json.loads(value) if value else None


def tables_only(quick):
    """The benchmark database with the services' tables, and nothing seeded
    (for scenarios that read no population); answers like seed()."""
    from services.shared.config import load_config
    from services.shared.migrations import SERVICES, upgrade_all

    name = env.db_name(quick)
    ensure_database(name)
    config = load_config()
    for service in SERVICES:
        config["DB_URIS"][f"{service}:Base"] = env.PG_SERVER + name
    upgrade_all(config)
    return {"size": None, "seconds": 0.0, "reused": True}


def seed(quick, force=False, log=print):
    """Seed the benchmark database if it does not hold this size yet; returns
    {size, seconds, reused}."""
    from services.shared.config import load_config
    from services.shared.migrations import SERVICES, upgrade_all

    size = dict(QUICK if quick else FULL, feed_following=list(FEED_FOLLOWING))
    name = env.db_name(quick)
    ensure_database(name)
    url = env.PG_SERVER + name
    engine = create_engine(url)
    config = load_config()
    for service in SERVICES:
        config["DB_URIS"][f"{service}:Base"] = url
    if not force and seeded_size(engine) == size:
        # Migrations added since the seed apply to it as to any database.
        upgrade_all(config)
        with engine.begin() as connection:
            # The replica counts as fresh (it is a copy of auth.follows).
            connection.execute(text("UPDATE events.follow_syncs SET synced_at = now()"))
            _clear_run_state(connection)
        engine.dispose()
        return {"size": size, "seconds": 0.0, "reused": True}

    started = time.monotonic()
    log(f"seeding {name}: {size}")
    with engine.begin() as connection:
        for schema in (*SERVICES, "bench"):
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    upgrade_all(config)
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    with engine.begin() as connection:
        _seed_sql(connection, size, password_hash, log)
        connection.execute(text("INSERT INTO bench.meta VALUES ('size', :v)"), {"v": json.dumps(size)})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ("auth.users", "auth.follows", "events.follows", "events.posts", "events.events",
                      "events.occurrences", "events.media", "events.follow_syncs"):
            connection.execute(text(f"VACUUM ANALYZE {table}"))
    engine.dispose()
    return {"size": size, "seconds": round(time.monotonic() - started, 1), "reused": False}


def _clear_run_state(connection):
    """Undo what earlier runs wrote that would change later ones: posts the
    load added, logins' refresh tokens, conversations."""
    connection.execute(text("DELETE FROM events.posts WHERE body LIKE 'load %'"))
    connection.execute(text("DELETE FROM auth.refresh_tokens"))
    connection.execute(text("TRUNCATE messages.conversations CASCADE"))
    for schema in ("auth", "events", "messages"):
        connection.execute(text(f"DELETE FROM {schema}.outbox"))
        connection.execute(text(f"DELETE FROM {schema}.processed_events"))


def _timed(connection, log, label, sql, **params):
    started = time.monotonic()
    connection.execute(text(sql), params)
    log(f"  {label}: {time.monotonic() - started:.1f} s")


def _drop_indexes(connection, table):
    """Drop a table's primary key and indexes (a bulk insert then writes only
    the heap); returns the statements that put them back, exactly as they were."""
    schema, name = table.split(".")
    restore = []
    for constraint, definition in connection.execute(text("""
            SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = CAST(:table AS regclass) AND contype = 'p'"""), {"table": table}):
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"'))
        restore.append(f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {definition}')
    for index, definition in connection.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :schema AND tablename = :name"),
            {"schema": schema, "name": name}).all():
        connection.execute(text(f'DROP INDEX {schema}."{index}"'))
        restore.append(definition)
    return restore


def _seed_sql(connection, size, password_hash, log):
    users, posts, events = size["users"], size["posts"], size["events"]
    extra = len(FEED_FOLLOWING)
    connection.execute(text("CREATE SCHEMA bench"))
    connection.execute(text("CREATE TABLE bench.meta (key text PRIMARY KEY, value text)"))
    # n -> id: users 1..users are the population, users+1.. the feed-scaling readers.
    _timed(connection, log, "user ids", """
        CREATE TABLE bench.uid AS
        SELECT n, gen_random_uuid() AS id FROM generate_series(1, :total) AS n;
        ALTER TABLE bench.uid ADD PRIMARY KEY (n);
    """, total=users + extra)
    _timed(connection, log, "auth.users", """
        INSERT INTO auth.users (id, email, username, display_name, bio, password_hash, is_active,
                                created_at, updated_at)
        SELECT id, 'b' || n || '@bench.example', 'b' || n, 'Bench User ' || n, '', :hash, true,
               now() - interval '400 days', now() - interval '400 days'
        FROM bench.uid
    """, hash=password_hash)
    # Out-degree log-normal (Box-Muller), followees skewed to low user numbers.
    restore = _drop_indexes(connection, "auth.follows")
    _timed(connection, log, "auth.follows", """
        WITH degrees AS (
            SELECT n, least(2000, 3 + floor(exp(3.2 + 0.9 * sqrt(-2 * ln(1 - random()))
                                               * cos(2 * pi() * random()))))::int AS degree
            FROM generate_series(1, :users) AS n
        ), edges AS (
            SELECT DISTINCT d.n AS follower, 1 + floor(:users * power(random(), 2.2))::int AS followee
            FROM degrees d, LATERAL generate_series(1, d.degree) AS k
        )
        INSERT INTO auth.follows (follower_id, followee_id, created_at)
        SELECT a.id, b.id, now() - random() * interval '365 days'
        FROM edges e JOIN bench.uid a ON a.n = e.follower JOIN bench.uid b ON b.n = e.followee
        WHERE e.follower <> e.followee
    """, users=users)
    for index, following in enumerate(FEED_FOLLOWING):
        _timed(connection, log, f"reader following {following}", """
            INSERT INTO auth.follows (follower_id, followee_id, created_at)
            SELECT (SELECT id FROM bench.uid WHERE n = :reader), id, now() - random() * interval '365 days'
            FROM bench.uid WHERE n <= :users ORDER BY random() LIMIT :following
        """, reader=users + 1 + index, users=users, following=min(following, users))
    _timed(connection, log, "auth.follows indexes", ";\n".join(restore))
    restore = _drop_indexes(connection, "events.follows")
    _timed(connection, log, "events.follows replica", """
        INSERT INTO events.follows (follower_id, followee_id) SELECT follower_id, followee_id FROM auth.follows;
        INSERT INTO events.follow_syncs (user_id, synced_at) SELECT id, now() FROM bench.uid;
    """)
    _timed(connection, log, "events.follows indexes", ";\n".join(restore))
    _timed(connection, log, "events.events", """
        INSERT INTO events.events (id, organizer_id, title, description, location, is_online, visibility,
                                   status, timezone, starts_at, ends_at, series_ends_at, participants_count,
                                   created_at, updated_at)
        SELECT gen_random_uuid(), u.id, 'Bench event ' || g, 'An event to talk about.', 'Somewhere', false,
               CASE WHEN r < 0.7 THEN 'public' WHEN r < 0.9 THEN 'followers' ELSE 'private' END,
               'active', 'UTC', s, s + interval '2 hours', s + interval '2 hours', 0, c, c
        FROM (SELECT g, random() AS r, 1 + floor(:users * power(random(), 1.5))::int AS author,
                     now() + random() * interval '120 days' AS s,
                     now() - random() * interval '365 days' AS c
              FROM generate_series(1, :events) AS g) AS x
        JOIN bench.uid u ON u.n = x.author
    """, users=users, events=events)
    # Every seeded event is a single one: one occurrence each, as the service writes them.
    _timed(connection, log, "events.occurrences", """
        INSERT INTO events.occurrences (event_id, starts_at) SELECT id, starts_at FROM events.events
    """)
    _timed(connection, log, "events.media (one per user)", """
        INSERT INTO events.media (id, owner_id, content_type, size, created_at)
        SELECT gen_random_uuid(), id, 'image/png', 2048, now() - interval '30 days' FROM bench.uid
    """)
    _timed(connection, log, "public event ids", """
        CREATE TABLE bench.public_events AS
        SELECT row_number() OVER () AS k, id FROM events.events WHERE visibility = 'public';
        ALTER TABLE bench.public_events ADD PRIMARY KEY (k);
    """)
    # 5% of posts name a public event, 10% carry their author's media.
    restore = _drop_indexes(connection, "events.posts")
    _timed(connection, log, "events.posts", """
        INSERT INTO events.posts (id, author_id, body, event_id, media_ids, created_at)
        SELECT gen_random_uuid(), u.id,
               'Seeded post ' || g || ': see you there, bring friends and a good mood please.',
               CASE WHEN x.r < 0.05 THEN (SELECT id FROM bench.public_events
                                          WHERE k = 1 + (g % (SELECT count(*) FROM bench.public_events))) END,
               CASE WHEN x.r > 0.9 THEN ARRAY[(SELECT id FROM events.media m WHERE m.owner_id = u.id LIMIT 1)]
                    ELSE '{}'::uuid[] END,
               now() - random() * interval '365 days'
        FROM (SELECT g, random() AS r, 1 + floor(:users * power(random(), 1.5))::int AS author
              FROM generate_series(1, :posts) AS g) AS x
        JOIN bench.uid u ON u.n = x.author
    """, users=users, posts=posts)
    connection.execute(text("SET maintenance_work_mem = '256MB'"))
    _timed(connection, log, "events.posts indexes", ";\n".join(restore))


def population(quick, load_users, realtime_users):
    """What the load generators need: users (n, id) for the mix, the
    feed-scaling readers, public events, each load user's media."""
    engine = create_engine(env.PG_SERVER + env.db_name(quick))
    size = QUICK if quick else FULL
    with engine.connect() as connection:
        rows = connection.execute(text("""
            SELECT u.n, u.id, (SELECT m.id FROM events.media m WHERE m.owner_id = u.id LIMIT 1) AS media_id
            FROM bench.uid u WHERE u.n <= :users ORDER BY random() LIMIT :k
        """), {"users": size["users"], "k": load_users}).all()
        readers = connection.execute(text(
            "SELECT n, id FROM bench.uid WHERE n > :users ORDER BY n"), {"users": size["users"]}).all()
        public_events = [row[0] for row in connection.execute(text(
            "SELECT id FROM bench.public_events ORDER BY random() LIMIT 200"))]
        realtime = connection.execute(text(
            "SELECT n, id FROM bench.uid WHERE n <= :users ORDER BY n DESC LIMIT :k"),
            {"users": size["users"], "k": realtime_users}).all()
        authors = [row[0] for row in connection.execute(text("""
            SELECT u.id FROM bench.uid u
            WHERE u.n <= :users ORDER BY power(random(), 1.0 / (1 + 1.0 / u.n)) DESC LIMIT 500
        """), {"users": size["users"]})]
        following = {str(row[0]): row[1] for row in connection.execute(text(
            "SELECT follower_id, count(*) FROM auth.follows WHERE follower_id IN "
            "(SELECT id FROM bench.uid WHERE n > :users) GROUP BY follower_id"), {"users": size["users"]})}
    engine.dispose()
    return {
        "load_users": [{"n": row.n, "id": str(row.id), "media_id": str(row.media_id)} for row in rows],
        "readers": [{"n": row.n, "id": str(row.id), "following": following.get(str(row.id), 0)}
                    for row in readers],
        "public_events": [str(event) for event in public_events],
        "realtime_users": [{"n": row.n, "id": str(row.id)} for row in realtime],
        "authors": [str(author) for author in authors],
    }
