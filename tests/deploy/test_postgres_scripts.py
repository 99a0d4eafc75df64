"""deploy/postgres/*.sh, the scripts the backup CronJob and the tools pod run
from the ConfigMap postgres-scripts, against PostgreSQL on this machine.

- backup.sh and restore.sh on the shared server (127.0.0.1:5432, user
  postgres), in databases of their own named after the test database, each a
  copy of one with every service's migrations applied and rows added.
"""
import glob
import os
import shutil
import subprocess
import tempfile
import time

import psycopg2
import pytest

from tests.conftest import ROOT, TEST_NAME, TEST_PORT, fresh_database

pytestmark = pytest.mark.integration

SCRIPTS = os.path.join(ROOT, "deploy", "postgres")
SOURCE = TEST_NAME + "_pgbackup"
UNUSED_PORT = TEST_PORT + 221  # where nothing listens


def clean_environ():
    """This process's environment without libpq's variables."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def script(name, *args, env, stdin=None, check=True):
    result = subprocess.run([os.path.join(SCRIPTS, name), *args], env=env, input=stdin, capture_output=True,
                            text=True, timeout=120)
    if check:
        assert result.returncode == 0, f"{name} {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
    return result


def connect(database, **kwargs):
    options = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": database, "connect_timeout": 5}
    connection = psycopg2.connect(**dict(options, **kwargs))
    connection.autocommit = True
    return connection


def query(database, sql, *args):
    connection = connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def databases():
    return {name for (name,) in query("postgres", "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                      SOURCE)}


def drop_databases():
    for name in databases():
        query("postgres", f'DROP DATABASE "{name}" WITH (FORCE)')


def add_items(database, count):
    query(database, "INSERT INTO backup_check.items (body) SELECT 'item ' || g || ' é ✓' FROM generate_series(1, %s) g",
          count)


def items(database):
    return query(database, "SELECT count(*) FROM backup_check.items")[0][0]


def schema_of(database):
    """The tables, columns and Alembic revisions of a database."""
    columns = query(database, "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
                              "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3")
    revisions = [query(database, f'SELECT version_num FROM "{schema}".alembic_version')
                 for schema in ("auth", "events", "messages")]
    return columns, revisions


@pytest.fixture(scope="module")
def template():
    """A database with every service's migrations and a table of rows, to copy."""
    url = fresh_database("pgtemplate")
    name = url.rsplit("/", 1)[1]
    query(name, "CREATE SCHEMA backup_check")
    query(name, "CREATE TABLE backup_check.items (id serial PRIMARY KEY, body text NOT NULL)")
    add_items(name, 3)
    yield name
    query("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def source(template):
    """SOURCE, a fresh copy of the template (3 rows), and a directory for its dumps."""
    drop_databases()
    query("postgres", f'CREATE DATABASE "{SOURCE}" TEMPLATE "{template}"')
    backups = tempfile.mkdtemp(prefix="lifytp-backups-")
    env = dict(clean_environ(), PGHOST="127.0.0.1", PGPORT="5432", PGUSER="postgres", PGDATABASE=SOURCE,
               BACKUP_DIR=backups, BACKUP_KEEP="2")
    yield env
    shutil.rmtree(backups)
    drop_databases()


def dumps(env):
    return sorted(glob.glob(os.path.join(env["BACKUP_DIR"], "*")))


def test_backup_keeps_the_newest_dumps_and_each_restores_the_rows_of_its_time(source):
    for rows in (0, 1, 1):  # 3, 4, then 5 rows
        add_items(SOURCE, rows)
        script("backup.sh", env=source)
    kept = dumps(source)
    # BACKUP_KEEP=2: the first dump is gone; names sort by age.
    assert len(kept) == 2 and all(os.path.basename(path).startswith(SOURCE + "-") for path in kept)
    for path in kept:
        with open(path, "rb") as handle:
            assert handle.read(5) == b"PGDMP"  # pg_dump's custom format
        assert os.stat(path).st_mode & 0o077 == 0  # every row, password hashes included: the owner's only
    assert not glob.glob(os.path.join(source["BACKUP_DIR"], ".*.partial"))

    newest = script("restore.sh", "latest", SOURCE + "_latest", env=source)
    assert items(SOURCE + "_latest") == 5
    assert "backup_check.items 5" in newest.stdout.splitlines()
    assert schema_of(SOURCE + "_latest") == schema_of(SOURCE)
    # A dump named by its file name alone is looked for in BACKUP_DIR.
    script("restore.sh", os.path.basename(kept[0]), SOURCE + "_older", env=source)
    assert items(SOURCE + "_older") == 4

    # Never into a database that exists: it stays as it was.
    refused = script("restore.sh", "latest", SOURCE + "_older", env=source, check=False)
    assert refused.returncode != 0 and "exists" in refused.stderr
    assert items(SOURCE + "_older") == 4


def test_a_backup_that_fails_or_is_refused_leaves_the_dumps_as_they_were(source):
    script("backup.sh", env=source)
    before = dumps(source)
    # The server is not there: pg_dump fails, nothing is deleted, no partial file stays.
    down = script("backup.sh", env=dict(source, PGPORT=str(UNUSED_PORT)), check=False)
    assert down.returncode != 0
    for keep in ("0", "-1", "two", "2x"):
        refused = script("backup.sh", env=dict(source, BACKUP_KEEP=keep), check=False)
        assert refused.returncode != 0 and "BACKUP_KEEP" in refused.stderr, keep
    missing = script("backup.sh", env=dict(source, BACKUP_DIR=source["BACKUP_DIR"] + "/missing"), check=False)
    assert missing.returncode != 0
    assert dumps(source) == before
    assert not glob.glob(os.path.join(source["BACKUP_DIR"], ".*.partial"))


def test_the_restore_check_restores_the_newest_dump_then_drops_it_and_fails_on_a_broken_one(source):
    script("backup.sh", env=source)
    check = script("restore.sh", "--check", "latest", env=source)
    assert "backup_check.items 3" in check.stdout.splitlines()
    assert "check passed" in check.stdout
    assert databases() == {SOURCE}
    # A newer dump cut short (a full disk while it was copied elsewhere): the check fails and leaves nothing.
    (good,) = dumps(source)
    with open(good, "rb") as handle:
        content = handle.read()
    broken = os.path.join(source["BACKUP_DIR"], f"{SOURCE}-29991231T000000.000000000Z.dump")
    with open(broken, "wb") as handle:
        handle.write(content[:len(content) // 2])
    failed = script("restore.sh", "--check", "latest", env=source, check=False)
    assert failed.returncode != 0
    assert databases() == {SOURCE}
    nothing = script("restore.sh", "--check", "latest", env=dict(source, BACKUP_DIR=tempfile.mkdtemp()), check=False)
    assert nothing.returncode != 0 and "no dump" in nothing.stderr


def test_swap_puts_the_restored_database_in_place_and_keeps_the_live_one_beside_it(source):
    script("backup.sh", env=source)
    add_items(SOURCE, 2)  # 5 rows live, 3 in the dump
    script("restore.sh", "latest", SOURCE + "_restored", env=source)
    # Refused while a service is still connected: nothing is renamed.
    service = connect(SOURCE)
    try:
        refused = script("restore.sh", "--swap", SOURCE + "_restored", env=source, check=False)
        assert refused.returncode != 0
        assert databases() == {SOURCE, SOURCE + "_restored"}
    finally:
        service.close()
    eventually_disconnected(SOURCE)
    script("restore.sh", "--swap", SOURCE + "_restored", env=source)
    assert databases() == {SOURCE, SOURCE + "_before_restore"}
    assert items(SOURCE) == 3 and items(SOURCE + "_before_restore") == 5
    # A second swap would overwrite nothing either: the database kept last time is in the way.
    script("restore.sh", "latest", SOURCE + "_again", env=source)
    again = script("restore.sh", "--swap", SOURCE + "_again", env=source, check=False)
    assert again.returncode != 0 and "_before_restore exists" in again.stderr
    assert items(SOURCE) == 3


def eventually_disconnected(database):
    """A closed connection's backend leaves pg_stat_activity a moment after the client."""
    for _ in range(100):
        if not query("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", database)[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"still connected to {database}")
