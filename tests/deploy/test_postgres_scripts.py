"""deploy/postgres/*.sh, the scripts the backup CronJob and the tools pod run
from the ConfigMap postgres-scripts, against PostgreSQL on this machine.

- backup.sh and restore.sh on the shared server (127.0.0.1:5432, user
  postgres), in databases of their own named after the test database, each a
  copy of one with every service's migrations applied and rows added;
- rotate-password.sh on a private server that checks passwords
  (scram-sha-256, like the image's), started for it on LIFYTP_TEST_PORT + 220
  and stopped at the end: at every step, the credentials in the secret files
  and those of the pods still running from the step before connect.
"""
import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

import psycopg2
import pytest

from tests.conftest import ROOT, TEST_NAME, TEST_PORT, fresh_database, unavailable

pytestmark = pytest.mark.integration

SCRIPTS = os.path.join(ROOT, "deploy", "postgres")
SOURCE = TEST_NAME + "_pgbackup"
PRIVATE_PORT = TEST_PORT + 220
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


# ---- password rotation --------------------------------------------------------

def postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


@pytest.fixture(scope="module")
def private_server():
    """A PostgreSQL server of its own that checks passwords on TCP (trust on its
    socket, for the test's own look-ups), with the role and database lifytp,
    as the image makes them."""
    bindir = postgres_bin()
    if not bindir or os.geteuid() != 0:
        unavailable("PASSWORD ROTATION NOT TESTED: needs PostgreSQL's server binaries and root (it runs as postgres)")
    base = tempfile.mkdtemp(prefix="lifytp-postgres-")
    os.makedirs(os.path.join(base, "run"))
    with open(os.path.join(base, "password"), "w") as handle:
        handle.write(secrets.token_urlsafe(24))
    shutil.chown(base, "postgres")
    for name in ("run", "password"):
        shutil.chown(os.path.join(base, name), "postgres")

    def as_postgres(*args):
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120)

    data = os.path.join(base, "data")
    as_postgres(os.path.join(bindir, "initdb"), "-D", data, "-U", "lifytp", "--pwfile", os.path.join(base, "password"),
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {PRIVATE_PORT} -c unix_socket_directories={base}/run -c fsync=off"
    pg_ctl = os.path.join(bindir, "pg_ctl")
    as_postgres(pg_ctl, "-D", data, "-l", os.path.join(base, "log"), "-o", options, "-w", "start")
    try:
        bootstrap = psycopg2.connect(host=os.path.join(base, "run"), port=PRIVATE_PORT, user="lifytp",
                                     dbname="postgres")
        bootstrap.autocommit = True
        with bootstrap.cursor() as cursor:
            cursor.execute("CREATE DATABASE lifytp")
            # The test's own look-ups, as a role the rotation does not count.
            cursor.execute("CREATE ROLE observer LOGIN SUPERUSER")
        bootstrap.close()
        yield os.path.join(base, "run")
    finally:
        as_postgres(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base)


def read_env(path):
    with open(path) as handle:
        return dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)


def clients(secrets_dir):
    """{who: (user, password)} the pods started from an overlay's secret files
    log in with: each process's and the migrations' database URLs, and the
    backup's (the role lifytp with postgres.env's password)."""
    found = {}
    for name in ("auth", "events", "messages", "migrations"):
        for key, value in read_env(os.path.join(secrets_dir, name + ".env")).items():
            if key.endswith("_DATABASE_URL"):
                url = urlsplit(value)
                assert (url.hostname, url.port, url.path) == ("postgres", 5432, "/lifytp"), value
                found[f"{name} {key}"] = (url.username, url.password)
    found["backup"] = ("lifytp", read_env(os.path.join(secrets_dir, "postgres.env"))["POSTGRES_PASSWORD"])
    return found


def session(credentials):
    user, password = credentials
    connection = psycopg2.connect(host="127.0.0.1", port=PRIVATE_PORT, user=user, password=password, dbname="lifytp",
                                  connect_timeout=5)
    connection.autocommit = True
    return connection


def logs_in_as_lifytp(credentials):
    """Whether these credentials connect, acting as the role lifytp."""
    try:
        connection = session(credentials)
    except psycopg2.OperationalError as error:
        assert "password authentication failed" in str(error), error
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            return cursor.fetchone()[0] == "lifytp"
    finally:
        connection.close()


def failing(*groups):
    return sorted({who for group in groups for who, credentials in group.items() if not logs_in_as_lifytp(credentials)})


def test_password_rotation_never_leaves_a_running_client_with_a_password_that_fails(private_server, tmp_path):
    overlay = tmp_path / "overlay"
    subprocess.run([sys.executable, os.path.join(ROOT, "deploy", "make-secrets.py"), str(overlay)], check=True,
                   capture_output=True, timeout=60)
    secrets_dir = str(overlay / "secrets")
    old = clients(secrets_dir)
    admin = psycopg2.connect(host=private_server, port=PRIVATE_PORT, user="observer", dbname="lifytp")
    admin.autocommit = True
    with admin.cursor() as cursor:  # the password the database was made with is the one of the secret files
        cursor.execute("ALTER ROLE lifytp PASSWORD %s", (old["backup"][1],))
    assert failing(old) == []
    new = secrets.token_urlsafe(24)

    def tools(*args, check=True):
        """rotate-password.sh as the tools pod runs it: connected with the backup's Secret as it is now."""
        env = dict(clean_environ(), PGHOST="127.0.0.1", PGPORT=str(PRIVATE_PORT), PGUSER="lifytp",
                   PGDATABASE="lifytp", PGPASSWORD=clients(secrets_dir)["backup"][1])
        return script("rotate-password.sh", *args, env=env, stdin=new + "\n", check=check)

    def secret_files(target):
        script("rotate-password.sh", "secrets", secrets_dir, target, env=clean_environ(), stdin=new + "\n")
        return clients(secrets_dir)

    # 1. The bridge: a second login with the new password, acting as lifytp.
    tools("begin")
    assert failing(old) == []
    # 2. The processes and the migrations move to it; the backup keeps the role.
    bridged = secret_files("bridge")
    assert {user for user, _ in bridged.values()} == {"lifytp_rotation", "lifytp"}
    assert bridged["backup"] == old["backup"]
    assert failing(old, bridged) == []  # during the rollout, old and new pods side by side
    migration = session(bridged["migrations AUTH_DATABASE_URL"])
    with migration.cursor() as cursor:
        cursor.execute("CREATE TABLE made_through_the_bridge (id int)")  # a migration run through the bridge
    migration.close()
    # 3. Refused while a pod of before the rollout is still connected as lifytp.
    straggler = session(old["auth AUTH_DATABASE_URL"])
    refused = tools("switch", check=False)
    assert refused.returncode != 0 and "still connected as lifytp" in refused.stderr
    assert failing(old) == []
    straggler.close()
    eventually_gone("lifytp", admin)
    tools("switch")
    # Every running pod's credentials still work; the old password is gone, the
    # backup's with it until the final files are applied (docs/DEPLOY.md).
    assert failing({who: c for who, c in bridged.items() if who != "backup"}) == []
    assert failing(old) == sorted(old)
    # 4. Back to the role, with the new password, postgres.env (the backup's) too.
    final = secret_files("final")
    assert set(final.values()) == {("lifytp", new)}
    assert failing(bridged | {"backup": final["backup"]}, final) == []
    # 5. The bridge goes, once nobody uses it; what was made through it stays lifytp's.
    straggler = session(bridged["events EVENTS_DATABASE_URL"])
    refused = tools("end", check=False)
    assert refused.returncode != 0 and "still connected as lifytp_rotation" in refused.stderr
    straggler.close()
    eventually_gone("lifytp_rotation", admin)
    tools("end")
    assert failing(final) == []
    assert failing(bridged) == sorted(bridged)  # the bridge and the old password, both gone
    with admin.cursor() as cursor:
        cursor.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'made_through_the_bridge'")
        assert cursor.fetchall() == [("lifytp",)]
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'lifytp_rotation'")
        assert cursor.fetchone() == (0,)
    admin.close()
    for name in os.listdir(secrets_dir):
        assert os.stat(os.path.join(secrets_dir, name)).st_mode & 0o077 == 0, name  # still the owner's only


def eventually_gone(user, admin):
    with admin.cursor() as cursor:
        for _ in range(100):
            cursor.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE usename = %s AND backend_type = 'client backend'", (user,))
            if not cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"still connected as {user}")


def test_rotation_refuses_what_would_break_it(private_server, tmp_path):
    env = dict(clean_environ(), PGHOST=private_server, PGPORT=str(PRIVATE_PORT), PGUSER="lifytp", PGDATABASE="lifytp")
    password = secrets.token_urlsafe(24) + "\n"
    # switch before begin would change the password under every running pod.
    before = script("rotate-password.sh", "switch", env=env, stdin=password, check=False)
    assert before.returncode != 0 and "run begin first" in before.stderr
    for weak in ("short", "has a space in it, 16+", "quote'and@at-sign-16"):
        refused = script("rotate-password.sh", "begin", env=env, stdin=weak + "\n", check=False)
        assert refused.returncode != 0 and "16 or more" in refused.stderr, weak
    empty = tmp_path / "secrets"
    empty.mkdir()
    (empty / "auth.env").write_text("REDIS_URL=redis://:x@redis:6379/0\n")
    untouched = script("rotate-password.sh", "secrets", str(empty), "bridge", env=env, stdin=password, check=False)
    assert untouched.returncode != 0 and "no line to change" in untouched.stderr
    assert (empty / "auth.env").read_text() == "REDIS_URL=redis://:x@redis:6379/0\n"
    usage = script("rotate-password.sh", "rotate", env=env, check=False)
    assert usage.returncode == 2 and "rotate-password.sh begin" in usage.stderr
