"""The container images, really built and run on this machine.

Makes `debian:bookworm-slim` locally when it is missing (nothing can be
pulled here: deploy/docker/base-image.sh), builds every stage of the
Dockerfile with BuildKit (pip gets the system CA bundle as a build secret),
then runs the migrations image and every process image against this machine's
PostgreSQL, RabbitMQ and Redis over host networking, each with its own
database, vhost, RabbitMQ users and ports:

- the migrations image migrates the database and exits 0;
- every process answers /health and /ready, and docker's HEALTHCHECK (the
  image's own command) turns healthy;
- each process connects as its own RabbitMQ user with only the permissions of
  rabbitmq/definitions.json (imported by the real broker into a vhost of ours);
- a registration goes through auth;
- the compose edge (deploy/edge/nginx.conf under this machine's nginx) routes
  the API prefixes and passes Socket.IO, websocket upgrade included;
- SIGTERM stops every process cleanly (exit 0) well within the grace period.

Cache-friendly: an imported base image and docker's build cache are reused.
"""
import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from tests.conftest import ROOT, SUITE_LIMITS, TEST_NAME, TEST_PORT, TEST_REDIS_DB, unavailable
from tests.deploy.conftest import TAG, run

pytestmark = pytest.mark.integration

PROCESSES = {
    # name: (module file that must be in the checkout, port offset)
    "auth": ("services/auth/service.py", 0),
    "events": ("services/events/service.py", 1),
    "messages": ("services/messages/service.py", 2),
    "realtime": ("realtime/service.py", 3),
}
# Containers get ports of their own: 4493-4496 for LIFYTP_TEST_PORT=4293.
PORT_BASE = TEST_PORT + 200
EDGE_PORT = TEST_PORT + 204  # the nginx edge in front of them
STORE_PORT = TEST_PORT + 209  # where the edge looks for the media store: nothing listens
NAME = TEST_NAME + "_img"  # database and vhost
DB_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/"
# Kubernetes gives 60 s minus the 10 s preStop pause; compose gives 40 s.
GRACE_SECONDS = 30


def tracked(path):
    """In the repository (committed or staged), not just a file someone is still writing."""
    if not os.path.exists(os.path.join(ROOT, path)):
        return False
    result = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT, capture_output=True)
    return result.returncode == 0 or not os.path.isdir(os.path.join(ROOT, ".git"))


def rabbitmq_hash(password):
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def rabbitmqctl_parallel(commands):
    """rabbitmqctl takes a second or two to start: run independent commands at once, ignoring failures."""
    processes = [subprocess.Popen(["rabbitmqctl", "-q", *command], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for command in commands]
    for process in processes:
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def stores():
    """A database, a vhost and per-process RabbitMQ users of our own, removed afterwards."""
    from sqlalchemy import create_engine, text

    server = create_engine(DB_SERVER + "postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{NAME}"'))

    # rabbitmq/definitions.json itself, imported by the real broker: the same
    # permissions, policies, exchanges and queues, moved to a vhost of our own,
    # with users of our own and passwords only this run knows.
    with open(os.path.join(ROOT, "rabbitmq", "definitions.json")) as handle:
        definitions = json.load(handle)
    users = {}
    for user in definitions["users"]:
        service = user["name"].removeprefix("lifytp-")
        if service in PROCESSES:
            users[service] = (f"{NAME}-{service}", secrets.token_hex(16))
    renamed = {f"lifytp-{service}": user for service, (user, _) in users.items()}
    ours = {
        "vhosts": [{"name": NAME}],
        "users": [{"name": user, "password_hash": rabbitmq_hash(password), "tags": [],
                   "hashing_algorithm": "rabbit_password_hashing_sha256"} for user, password in users.values()],
        "permissions": [{"user": "guest", "vhost": NAME, "configure": ".*", "write": ".*", "read": ".*"}] + [
            dict(p, user=renamed[p["user"]], vhost=NAME) for p in definitions["permissions"] if p["user"] in renamed],
        "policies": [dict(p, vhost=NAME) for p in definitions["policies"]],
        "exchanges": [dict(e, vhost=NAME) for e in definitions["exchanges"]],
        "queues": [dict(q, vhost=NAME) for q in definitions["queues"]],
        "bindings": [dict(b, vhost=NAME) for b in definitions["bindings"]],
    }
    rabbitmqctl_parallel([["delete_vhost", NAME]] + [["delete_user", user] for user, _ in users.values()])
    # On standard input: rabbitmqctl may run elsewhere (CI runs the broker's own in its container).
    run(["rabbitmqctl", "-q", "import_definitions", "--format", "json"], input=json.dumps(ours))

    yield {
        "database_url": DB_SERVER + NAME,
        "amqp": {s: f"amqp://{u}:{p}@127.0.0.1:5672/{NAME}" for s, (u, p) in users.items()},
        "redis_url": f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
    }

    rabbitmqctl_parallel([["delete_vhost", NAME]] + [["delete_user", user] for user, _ in users.values()])
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture(scope="module")
def keys():
    """A JWT key pair readable by the images' user (only by it when we are root), as the Secret mounts it."""
    from services.shared.tokens import ensure_dev_keys

    directory = tempfile.mkdtemp(prefix="lifytp-img-keys-")
    ensure_dev_keys(os.path.join(directory, "jwt-private.pem"), os.path.join(directory, "jwt-public.pem"))
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.geteuid() == 0:
            os.chown(path, 10001, 10001)
            os.chmod(path, 0o400)
        else:  # a CI runner's user cannot give files away: world-readable, in a private temp dir
            os.chmod(path, 0o444)
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def hardened(docker, name, image, env, extra=()):
    """`docker run` as Kubernetes runs the pods: read-only root, /tmp writable, no capabilities."""
    args = [docker, "run", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", *extra]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return args + [image]


def test_images_are_hardened(docker, images):
    for target, tag in images.items():
        config = json.loads(run([docker, "image", "inspect", tag]).stdout)[0]["Config"]
        assert config["User"] == "10001:10001", target
        assert isinstance(config["Entrypoint"], list) and config["Entrypoint"][0].startswith("/opt/venv/bin/"), target
        if target == "migrations":
            assert config["Healthcheck"]["Test"] == ["NONE"]
        else:
            assert config["Healthcheck"]["Test"][0] == "CMD", "exec-form HEALTHCHECK in " + target
            assert config["Entrypoint"][:4] == ["/opt/venv/bin/nameko", "run", "--config", "/app/config.yaml"]
    # The CA bundle handed to pip is a build secret: it is in no image.
    probe = run([docker, "run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", images["auth"],
                 "-c", "import os; print([p for p in ('/run/secrets/pip_ca', '/etc/ssl/certs/ca-certificates.crt')"
                 " if os.path.exists(p)])"])
    assert probe.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def running(docker, images, stores, keys):
    """The migrations image run to completion, then every process image started and healthy."""
    prefix = f"lifytp-{TAG}-"
    migrate = hardened(docker, prefix + "migrations", images["migrations"], {
        "AUTH_DATABASE_URL": stores["database_url"],
        "EVENTS_DATABASE_URL": stores["database_url"],
        "MESSAGES_DATABASE_URL": stores["database_url"],
    }, extra=["--rm"])
    phase = time.monotonic()
    run(migrate, timeout=180)
    print(f"migrations image: {time.monotonic() - phase:.1f}s")

    from sqlalchemy import create_engine, text

    engine = create_engine(stores["database_url"])
    with engine.connect() as connection:
        schemas = set(connection.scalars(text("SELECT schema_name FROM information_schema.schemata")))
    engine.dispose()
    assert "auth" in schemas

    wanted = {name: offset for name, (module, offset) in PROCESSES.items() if tracked(module)}
    missing = sorted(set(PROCESSES) - set(wanted))
    assert not missing, f"service modules missing from this checkout: {missing}"
    started = []
    try:
        for name, offset in wanted.items():
            env = {
                "WEB_SERVER_ADDRESS": f"127.0.0.1:{PORT_BASE + offset}",
                "AMQP_URI": stores["amqp"][name],
                "REDIS_URL": stores["redis_url"],
                "BCRYPT_ROUNDS": "4",
                "LOG_LEVEL": "INFO",
                **SUITE_LIMITS,
            }
            if name != "realtime":
                env[name.upper() + "_DATABASE_URL"] = stores["database_url"]
            container = prefix + name
            run([docker, "rm", "--force", container], check=False)
            run(hardened(docker, container, images[name], env, extra=[
                "--detach", "--health-interval", "2s", "--health-start-period", "60s",
                "--volume", keys + ":/var/run/secrets/lifytp/jwt:ro"]))
            started.append(container)

        for name, offset in wanted.items():
            base = f"http://127.0.0.1:{PORT_BASE + offset}"
            container = prefix + name
            wait_for(lambda base=base: get(base + "/health") == 200, 60, docker, container, "/health")
            wait_for(lambda base=base: get(base + "/ready") == 200, 60, docker, container, "/ready")
            wait_for(lambda container=container: health_status(docker, container) == "healthy", 60, docker,
                     container, "HEALTHCHECK healthy")
        print(f"all processes healthy: {time.monotonic() - phase:.1f}s after the migrations began")
        yield {"containers": started, "processes": wanted}
    finally:
        for container in started:
            run([docker, "rm", "--force", container], check=False)


def test_processes_answer_health_ready_and_a_real_request(running):
    # A real request through auth: database, bcrypt, broker (outbox) and the private key.
    auth = f"http://127.0.0.1:{PORT_BASE}"
    username = "img" + secrets.token_hex(4)
    response = requests.post(auth + "/auth/register", timeout=15, json={
        "email": username + "@example.com", "username": username, "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    me = requests.get(auth + "/auth/me", timeout=5,
                      headers={"Authorization": "Bearer " + response.json()["access_token"]})
    assert me.status_code == 200, me.text


def test_the_compose_edge_serves_the_api_and_socketio_on_one_base_url(running):
    """deploy/edge/nginx.conf in front of the running images (upstream hosts pointed at them)."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if not nginx and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], capture_output=True, timeout=300,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    if not nginx:
        unavailable("EDGE NOT CHECKED LIVE: no nginx binary and not root to install nginx-light")
    with open(os.path.join(ROOT, "deploy", "edge", "nginx.conf")) as handle:
        conf = handle.read()
    for name, (_, offset) in PROCESSES.items():
        conf = conf.replace(f"server {name}:{4100 + offset};", f"server 127.0.0.1:{PORT_BASE + offset};")
        assert f"127.0.0.1:{PORT_BASE + offset}" in conf, name
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{EDGE_PORT};")
    # The media store is not part of this test (test_compose.py loads media): a port nothing listens on.
    conf = conf.replace("proxy_pass http://minio:9000;", f"proxy_pass http://127.0.0.1:{STORE_PORT};")
    directory = tempfile.mkdtemp(prefix="lifytp-edge-")
    os.chmod(directory, 0o755)  # nginx's workers drop root
    main = (f"worker_processes 1;\nerror_log stderr;\npid {directory}/nginx.pid;\nevents {{}}\n"
            f"http {{\naccess_log off;\nclient_body_temp_path {directory};\nproxy_temp_path {directory};\n"
            f"{conf}\n}}\n")
    with open(os.path.join(directory, "nginx.conf"), "w") as handle:
        handle.write(main)
    edge = subprocess.Popen([nginx, "-p", directory, "-c", os.path.join(directory, "nginx.conf"),
                             "-g", "daemon off;"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{EDGE_PORT}"
        deadline = time.monotonic() + 15
        while get(base + "/edge-health") != 200:
            assert edge.poll() is None and time.monotonic() < deadline, edge.stdout.read().decode()
            time.sleep(0.2)
        routes = {"auth": ["/auth/me", "/users"], "events": ["/events", "/feed", "/calendar"],
                  "messages": ["/messages/conversations", "/notifications"]}
        for name, paths in routes.items():
            if name not in running["processes"]:
                continue
            for path in paths:
                response = requests.get(base + path, timeout=10)
                # Unauthenticated: the service's own JSON 401, not the edge's 404 or a 5xx.
                assert response.status_code == 401, (path, response.status_code, response.text[:200])
                assert response.json()["error"]["code"], path
        assert requests.get(base + "/nowhere", timeout=5).status_code == 404
        assert requests.get(base + "/lifytp-media/x", timeout=5).status_code == 502  # routed to the store
        assert requests.put(base + "/lifytp-media/x", data=b"x", timeout=5).status_code == 403  # reads only
        if "realtime" in running["processes"]:
            import websocket

            polling = requests.get(base + "/socket.io/?EIO=4&transport=polling", timeout=10)
            assert polling.status_code == 200 and polling.text.startswith("0{"), polling.text[:200]
            socket = websocket.create_connection(f"ws://127.0.0.1:{EDGE_PORT}/socket.io/?EIO=4&transport=websocket",
                                                 timeout=10)
            try:
                assert socket.recv().startswith("0{")  # Engine.IO open packet, through the upgrade
            finally:
                socket.close()
    finally:
        edge.terminate()
        edge.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def test_every_process_stops_cleanly_on_sigterm_within_the_grace_period(docker, running):
    # All at once, as a rollout or a node drain would; each must exit 0 within the grace period.
    started = running["containers"]
    began = time.monotonic()
    for container in started:
        run([docker, "kill", "--signal", "TERM", container])
    for container in started:
        remaining = max(1.0, GRACE_SECONDS - (time.monotonic() - began))
        try:
            exit_code = run([docker, "wait", container], timeout=remaining).stdout.strip()
        except Exception as exc:  # eventlet's and the standard TimeoutExpired differ
            if "TimeoutExpired" not in type(exc).__name__:
                raise
            logs = run([docker, "logs", "--tail", "60", container], check=False)
            raise AssertionError(f"{container} still running {GRACE_SECONDS}s after SIGTERM:\n"
                                 f"{logs.stdout}{logs.stderr[-6000:]}") from None
        elapsed = time.monotonic() - began
        logs = run([docker, "logs", "--tail", "40", container]).stderr
        assert exit_code == "0", f"{container} exited {exit_code} on SIGTERM:\n{logs}"
        assert elapsed < GRACE_SECONDS, f"{container} took {elapsed:.1f}s to stop"
        print(f"{container} stopped on SIGTERM within {elapsed:.1f}s")


def get(url):
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


def health_status(docker, container):
    result = run([docker, "inspect", "--format", "{{.State.Health.Status}}", container], check=False)
    return result.stdout.strip()


def wait_for(condition, timeout, docker, container, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        state = run([docker, "inspect", "--format", "{{.State.Status}}", container], check=False).stdout.strip()
        if state == "exited":
            break
        time.sleep(0.5)
    logs = run([docker, "logs", "--tail", "60", container], check=False)
    raise AssertionError(f"{container}: no {what} within {timeout}s\n{logs.stdout}{logs.stderr}")
