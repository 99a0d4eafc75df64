"""Shared fixtures. Tests run against the real PostgreSQL, RabbitMQ and Redis,
isolated from a development system: database `lifytp_test`, vhost
`lifytp_test`, Redis database 15 and a port of their own."""
import os

import eventlet

# Hypothesis loads the plugins other packages register when it is first
# imported; trio's (installed for selenium) imports trio, which fails once
# eventlet has patched socket. No test here uses trio.
os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")
# Before anything imports socket or threading: plain pytest does not patch.
eventlet.monkey_patch()

import contextlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402
import requests  # noqa: E402

from tests.support.mail import MailSink  # noqa: E402
from tests.support.processes import ServedProcess  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# LIFYTP_TEST_ID lets several suites run at once on one machine, each with its
# own database, vhost, Redis database and port.
TEST_ID = os.environ.get("LIFYTP_TEST_ID", "")
TEST_NAME = "lifytp_test" + ("_" + TEST_ID if TEST_ID else "")
TEST_DB_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/" + TEST_NAME
TEST_VHOST = TEST_NAME
TEST_PORT = int(os.environ.get("LIFYTP_TEST_PORT", "4290"))
TEST_REDIS_DB = int(os.environ.get("LIFYTP_TEST_REDIS_DB", "15"))
STATE_DIR = tempfile.mkdtemp(prefix="lifytp-test-")
# The suite's development mail sink (the `mail_sink` fixture): every system
# the suite starts sends its mail there.
MAIL_SINK_PORT = TEST_PORT + 25
MAIL_DIR = os.path.join(STATE_DIR, "mail")

# The suite registers and logs in hundreds of times from one address, and
# every system it starts (images included) shares one Redis database:
# schemathesis alone fails dozens of logins. The tests of these limits start a
# system of their own with low ones.
SUITE_LIMITS = {
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "100000",
    "REGISTER_MAX_PER_ADDRESS": "100000",
    "LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "100000",
    "LOGIN_MAX_ATTEMPTS_PER_ACCOUNT": "100000",
    "PASSWORD_FORGOT_MAX_PER_ADDRESS": "100000",
}
TEST_ENV = {
    "AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/" + TEST_VHOST,
    "AUTH_DATABASE_URL": TEST_DB_URL,
    "EVENTS_DATABASE_URL": TEST_DB_URL,
    "MESSAGES_DATABASE_URL": TEST_DB_URL,
    "REDIS_URL": f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
    "WEB_SERVER_ADDRESS": f"127.0.0.1:{TEST_PORT}",
    "JWT_PRIVATE_KEY_PATH": os.path.join(STATE_DIR, "keys", "jwt-private.pem"),
    "JWT_PUBLIC_KEY_PATH": os.path.join(STATE_DIR, "keys", "jwt-public.pem"),
    "MEDIA_LOCAL_DIR": os.path.join(STATE_DIR, "media"),
    # Cost 12 is the production default (tested in unit tests); 4 keeps the
    # suite fast without changing any code path.
    "BCRYPT_ROUNDS": "4",
    "RPC_TIMEOUT_SECONDS": "3",
    "LOG_LEVEL": "WARNING",
    "CORS_ALLOWED_ORIGINS": "https://app.example, https://admin.example",
    "SMTP_URL": f"smtp://127.0.0.1:{MAIL_SINK_PORT}",
    "APP_LINK_BASE_URL": "https://app.example",
    **SUITE_LIMITS,
}
os.environ.update(TEST_ENV)
os.environ.setdefault("LIFYTP_CONFIG", os.path.join(ROOT, "config.yaml"))


@pytest.fixture(scope="session")
def config():
    """config.yaml as the test processes read it, over fresh stores."""
    from sqlalchemy import create_engine, text

    from services.shared.config import load_config
    from services.shared.migrations import SERVICES, upgrade_all
    from services.shared.redis import redis_from_config
    from services.shared.tokens import ensure_dev_keys

    loaded = load_config()
    ensure_dev_keys(loaded["JWT_PRIVATE_KEY_PATH"], loaded["JWT_PUBLIC_KEY_PATH"])
    _create_database()
    engine = create_engine(TEST_DB_URL)
    with engine.begin() as connection:
        for schema in SERVICES:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
    upgrade_all(loaded)
    redis_from_config(loaded).flushdb()
    reset_vhost(TEST_VHOST)
    return loaded


def _create_database():
    from sqlalchemy import create_engine, text

    server = create_engine(TEST_DB_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": TEST_NAME}):
            connection.execute(text(f'CREATE DATABASE "{TEST_NAME}"'))
    server.dispose()


def fresh_database(name):
    """An empty, migrated database of its own; returns its URL.

    A system started on a vhost of its own must not share the suite's
    database: every process's outbox relay publishes any unpublished row of
    its tables, so the other system's relay would send this one's events to
    the other broker vhost, where nobody of this system hears them."""
    from sqlalchemy import create_engine, text

    from services.shared.config import load_config
    from services.shared.migrations import SERVICES, upgrade_all

    database = f"{TEST_NAME}_{name}"
    server = create_engine(TEST_DB_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    server.dispose()
    url = TEST_DB_URL.rsplit("/", 1)[0] + "/" + database
    upgrade_all(dict(load_config(), DB_URIS={f"{service}:Base": url for service in SERVICES}))
    return url


def database_env(url):
    return {"AUTH_DATABASE_URL": url, "EVENTS_DATABASE_URL": url, "MESSAGES_DATABASE_URL": url}


def reset_vhost(vhost):
    """An empty RabbitMQ vhost; returns the AMQP URI that reaches it."""
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return "amqp://guest:guest@127.0.0.1:5672/" + vhost


@pytest.fixture(scope="session")
def db_engine(config):
    from sqlalchemy import create_engine

    engine = create_engine(TEST_DB_URL)
    yield engine
    engine.dispose()


def unavailable(reason):
    """A tool or privilege a test needs is missing. `.ci/run` installs every
    one of them, so in CI (CI set) that is a failure, never a skip; on a
    developer's machine it is a skip that says so loudly."""
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI installs and starts everything this test needs)")
    warnings.warn(UserWarning(reason), stacklevel=2)
    pytest.skip(reason)


def eventually(probe, timeout=10, interval=0.1):
    """probe()'s answer once it is truthy, polling until timeout; AssertionError
    (with the last answer) if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(f"still {answer!r} after {timeout} s")
        time.sleep(interval)


class Api:
    """A client of the running system, as the mobile app would be."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.http = requests.Session()

    def request(self, method, path, user=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if user is not None:
            headers["Authorization"] = "Bearer " + user["access_token"]
        return self.http.request(method, self.base_url + path, headers=headers, timeout=15, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def register(self, username=None, password="correct horse battery", **extra):
        """A new user; returns the register answer (user, access_token, ...)."""
        username = username or "u" + uuid.uuid4().hex[:12]
        body = {"email": username + "@example.com", "username": username, "password": password, **extra}
        response = self.post("/auth/register", json=body)
        assert response.status_code == 201, response.text
        answer = response.json()
        answer["id"] = answer["user"]["id"]
        answer["password"] = password
        return answer


class RunningSystem(ServedProcess):
    """`deploy/local/serve.sh` in a subprocess: every service in one process
    (or only `modules`). With separate_stderr, stdout goes to log_path and
    stderr to stderr_path."""

    def __init__(self, port, env=None, log_name="system", modules=(), separate_stderr=False):
        stderr_path = os.path.join(STATE_DIR, log_name + ".stderr.log") if separate_stderr else None
        super().__init__(modules, port, os.path.join(STATE_DIR, log_name + ".log"), name="system",
                         env=dict(os.environ, **(env or {})), stderr_path=stderr_path)

    def wait_until_ready(self, probe_paths=("/auth/me", "/events", "/messages/conversations"), timeout=60):
        """Ready, and every service of probe_paths routed (not a 404)."""
        def routed():
            try:
                return all(requests.get(self.base_url + path, timeout=2).status_code != 404
                           for path in probe_paths if self._serves(path))
            except requests.RequestException:
                return False

        super().wait_until_ready(timeout, probe=routed)

    @staticmethod
    def _serves(path):
        service = {"/auth": "auth", "/events": "events", "/messages": "messages"}[
            "/" + path.strip("/").split("/")[0]]
        return os.path.exists(os.path.join(ROOT, "services", service, "service.py"))

    def stop(self, timeout=30):
        super().stop(timeout)
        return self.process.returncode

    def log(self):
        return self.log_tail(5000)


JS_DIR = os.path.join(ROOT, "tests", "js")


@pytest.fixture(scope="session")
def js_client_dir():
    """tests/js with the official JavaScript Socket.IO client installed (npm ci, once)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed to run the JavaScript Socket.IO client")
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "socket.io-client")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, capture_output=True,
                       timeout=180)
    return JS_DIR


@contextlib.contextmanager
def system_of_its_own(name, port_offset, env=None, modules=(), probe_paths=None, **options):
    """A system on an empty vhost and database of its own (only its own
    processes answer its RPC calls and publish its outbox), ready to serve;
    stopped afterwards. `options` go to RunningSystem."""
    from services.shared.tokens import ensure_dev_keys

    # The suite's keys, whether or not a test asked for the `config` fixture yet.
    ensure_dev_keys(TEST_ENV["JWT_PRIVATE_KEY_PATH"], TEST_ENV["JWT_PUBLIC_KEY_PATH"])
    env = dict(env or {})
    env.setdefault("AMQP_URI", reset_vhost(TEST_VHOST + "_" + name))
    for key, value in database_env(fresh_database(name)).items():
        env.setdefault(key, value)
    running = RunningSystem(TEST_PORT + port_offset, env=env, log_name=name, modules=modules, **options)
    try:
        running.wait_until_ready(**({"probe_paths": probe_paths} if probe_paths else {}))
        yield running
    finally:
        running.stop()


def lone_auth(name, port_offset, **env):
    """Auth alone in a process: no other service answers its RPC calls."""
    return system_of_its_own("auth_" + name, port_offset, env=env, modules=["services.auth.service"],
                             probe_paths=("/auth/me",))


@pytest.fixture(scope="session")
def mail_sink():
    """The development mail sink every system of the suite sends to; tests
    read the mail it received (MailSink.wait_for)."""
    sink = MailSink(MAIL_SINK_PORT, MAIL_DIR, os.path.join(STATE_DIR, "mail-sink.log"))
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def system(config, mail_sink):
    running = RunningSystem(TEST_PORT)
    try:
        running.wait_until_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def api(system):
    return Api(system.base_url)
