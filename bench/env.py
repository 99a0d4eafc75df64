"""Private isolation for benchmarks and the processes under test.

A benchmark never touches the development or test stores: it has its own
database (lifytp_bench, or lifytp_bench_quick for --quick), RabbitMQ vhosts,
Redis database (12, or 11) and ports (4700-4715, or 4750-4765), and its own
signing keys under bench/.state/ (ignored by git). A full and a quick run can
run at once; two of the same kind wait for each other (a lock file).
"""
import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile

from tests.support.processes import ROOT, ServedProcess, stop_all

STATE_DIR = os.path.join(ROOT, "bench", ".state")
PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/"

# Offsets from the port base of the run (4700 full, 4750 quick).
ONE_PROCESS_PORT = 0
SPLIT_PORTS = {"auth": 10, "events": 11, "messages": 12, "realtime": 13}
EXTRA_REALTIME_PORT = 14
# The mail sink beside the process that runs auth (registrations send mail).
MAIL_SINK_PORT = 15
PREFIXES = {
    "auth": ("/auth", "/users"),
    "events": ("/events", "/calendar", "/calendars", "/media", "/posts", "/feed"),
    "messages": ("/messages", "/notifications"),
}
MODULES = {
    "auth": "services.auth.service",
    "events": "services.events.service",
    "messages": "services.messages.service",
    "realtime": "realtime.service",
}


def port_base(quick):
    return 4750 if quick else 4700


def redis_db(quick):
    return 11 if quick else 12


@contextlib.contextmanager
def exclusive(quick):
    """Held for a whole run: ports, vhost and Redis database are the run's."""
    path = os.path.join(tempfile.gettempdir(), f"lifytp-bench-{'quick' if quick else 'full'}.lock")
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def db_name(quick):
    return "lifytp_bench_quick" if quick else "lifytp_bench"


def vhost_name(quick, suffix=""):
    return db_name(quick) + suffix


def amqp_uri(vhost):
    return "amqp://guest:guest@127.0.0.1:5672/" + vhost


def reset_vhost(vhost):
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return amqp_uri(vhost)


def delete_vhost(vhost):
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


def keys():
    """(private, public) key paths of the benchmark's own signing key pair."""
    from services.shared.tokens import ensure_dev_keys

    private = os.path.join(STATE_DIR, "keys", "jwt-private.pem")
    public = os.path.join(STATE_DIR, "keys", "jwt-public.pem")
    ensure_dev_keys(private, public)
    return private, public


def service_env(quick, **extra):
    private, public = keys()
    url = PG_SERVER + db_name(quick)
    env = {
        "AMQP_URI": amqp_uri(vhost_name(quick)),
        "AUTH_DATABASE_URL": url,
        "EVENTS_DATABASE_URL": url,
        "MESSAGES_DATABASE_URL": url,
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db(quick)}",
        "JWT_PRIVATE_KEY_PATH": private,
        "JWT_PUBLIC_KEY_PATH": public,
        "MEDIA_LOCAL_DIR": os.path.join(STATE_DIR, "media"),
        "BCRYPT_ROUNDS": "12",
        "LOG_LEVEL": "WARNING",
        "RPC_TIMEOUT_SECONDS": "5",
        # One line per request would cost the system under test its own CPU.
        "ACCESS_LOG_LEVEL": "WARNING",
        # The login storm logs in from one address, far past the limits that
        # protect a real deployment; measuring bcrypt needs them out of the way.
        "LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "1000000",
        "LOGIN_MAX_ATTEMPTS_PER_ACCOUNT": "1000000",
        "REGISTER_MAX_PER_ADDRESS": "1000000",
        "LIFYTP_CONFIG": os.path.join(ROOT, "config.yaml"),
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


class Process(ServedProcess):
    """One `nameko run` of the given modules (deploy/local/serve.sh), on a port,
    from this checkout or from another one (`root`, an export of an older commit)."""

    def __init__(self, name, port, modules, env, log_dir, root=ROOT):
        super().__init__(modules, port, os.path.join(log_dir, name + ".log"), name=name,
                         env=dict(os.environ, **env), root=root)

    def wait_until_ready(self, timeout=90):
        super().wait_until_ready(timeout)

    def log(self):
        return self.log_tail(4000)


class System:
    """The system under test in one of two shapes: every service in one
    process (as `make run`), or one process per service (as Kubernetes);
    every service, or only those named in `services`."""

    def __init__(self, shape, quick, log_dir, extra_realtime=False, root=ROOT, services=tuple(MODULES), **env):
        self.shape = shape
        self.processes = []
        service_names = [name for name in MODULES if name in services and os.path.exists(
            os.path.join(root, MODULES[name].replace(".", "/") + ".py"))]
        environment = service_env(quick, **env)
        base = port_base(quick)
        mail_dir = os.path.join(STATE_DIR, "mail")
        shutil.rmtree(mail_dir, ignore_errors=True)
        # deploy/local/serve.sh starts the sink beside the process that sends mail.
        with_mail = dict(environment, LIFYTP_MAIL_SINK=mail_dir, MAIL_SINK_PORT=str(base + MAIL_SINK_PORT))
        try:
            if shape == "one":
                one = Process("one-process", base + ONE_PROCESS_PORT, [MODULES[n] for n in service_names],
                              with_mail, log_dir, root)
                self.processes.append(one)
                self.routes = {name: one.base_url for name in service_names}
            else:
                self.routes = {}
                for name in service_names:
                    process = Process(name, base + SPLIT_PORTS[name], [MODULES[name]],
                                      with_mail if name == "auth" else environment, log_dir, root)
                    self.processes.append(process)
                    self.routes[name] = process.base_url
            self.realtime_urls = [self.routes["realtime"]] if "realtime" in self.routes else []
            if extra_realtime and "realtime" in self.routes:
                replica = Process("realtime-2", base + EXTRA_REALTIME_PORT, [MODULES["realtime"]], environment,
                                  log_dir, root)
                self.processes.append(replica)
                self.realtime_urls.append(replica.base_url)
            for process in self.processes:
                process.wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def prefix_routes(self):
        """{path prefix: base url} for the load generator."""
        return {prefix: self.routes[name] for name, prefixes in PREFIXES.items()
                if name in self.routes for prefix in prefixes}

    def pids(self):
        return {process.name: process.pid for process in self.processes}

    def stop(self):
        stop_all(self.processes)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time (user + system) a process has used so far; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def export_commit(ref):
    """The files of commit `ref` in bench/.state/baseline-<commit>, with this
    checkout's .venv; returns (path, short commit)."""
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    path = os.path.join(STATE_DIR, "baseline-" + commit)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", path], stdin=archive.stdout, check=True)
    if archive.wait():
        raise RuntimeError(f"git archive {commit} failed")
    os.symlink(os.path.join(ROOT, ".venv"), os.path.join(path, ".venv"))
    return path, commit


def fresh_log_dir(name):
    path = os.path.join(STATE_DIR, "logs", name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path
