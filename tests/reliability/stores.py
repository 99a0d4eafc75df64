"""Private PostgreSQL, Redis and RabbitMQ on loopback ports of their own.

The harness restarts its stores on purpose, so it never uses the machine's
shared instances: each store here lives in the harness's temporary directory,
listens on 127.0.0.1 only and is stopped when the harness ends.
"""
import glob
import os
import shutil
import signal
import subprocess

from tests.support.processes import LoggedProcess, wait_until


def _quiet(command, env=None, timeout=60, check=False):
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=check)


class PrivatePostgres:
    def __init__(self, base_dir, port, database="lifytp_reliability"):
        self.port = port
        self.database = database
        self.dir = os.path.join(base_dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        # initdb refuses to run as root: the cluster belongs to `postgres`.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self):
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args, check=True):
        return _quiet(self.as_user + [os.path.join(self.bin, args[0]), *args[1:]], check=check)

    def init(self):
        os.makedirs(self.dir, exist_ok=True)
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database)

    def start(self):
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop", check=False)

    def kill(self):
        self.stop()


class PrivateRedis:
    def __init__(self, base_dir, port):
        self.port = port
        self.dir = os.path.join(base_dir, "redis")
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def init(self):
        os.makedirs(self.dir, exist_ok=True)
        self.start()

    def start(self):
        self.process = LoggedProcess(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")],
            name="redis")
        wait_until(lambda: _quiet(["redis-cli", "-p", str(self.port), "ping"]).stdout.strip() == "PONG",
                   20, "redis")

    def stop(self):
        if self.process is not None:
            self.process.stop(grace=10)

    kill = stop


class PrivateRabbit:
    """A second RabbitMQ node: its own name, ports, epmd, cookie and files.

    It is started with the server script itself (not Debian's wrapper, which
    switches to the `rabbitmq` user and its home, so its cookie), with a home
    of its own (its own Erlang cookie), its own epmd port, no plugins and none
    of the machine's configuration (/etc/rabbitmq/conf.d, enabled_plugins: the
    default node's management UI), so nothing it does can reach that node.
    """

    def __init__(self, base_dir, port, dist_port, epmd_port):
        self.port = port
        self.dir = os.path.join(base_dir, "rabbitmq")
        self.node = f"lifytp-reliability-{port}@localhost"
        self.epmd_port = epmd_port
        self.env = dict(
            os.environ,
            HOME=self.dir,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(port),
            RABBITMQ_DIST_PORT=str(dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
            RABBITMQ_PID_FILE=os.path.join(self.dir, "rabbit.pid"),
            RABBITMQ_CONF_ENV_FILE=os.path.join(self.dir, "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(self.dir, "advanced.config"),
            RABBITMQ_CONFIG_FILES=os.path.join(self.dir, "conf.d"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
            RABBITMQ_ENABLED_PLUGINS="",
            ERL_EPMD_PORT=str(epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        self.env.pop("ERL_FLAGS", None)
        self.server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        self.ctl = "/usr/lib/rabbitmq/bin/rabbitmqctl"

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def init(self):
        for sub in ("mnesia", "log", "conf.d"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        with open(self.env["RABBITMQ_CONF_ENV_FILE"], "w"):
            pass
        with open(self.env["RABBITMQ_CONFIG_FILE"] + ".conf", "w") as handle:
            handle.write(f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
                         "loopback_users.guest = true\n"
                         "disk_free_limit.absolute = 50MB\n")
        with open(self.env["RABBITMQ_ENABLED_PLUGINS_FILE"], "w") as handle:
            handle.write("[].\n")
        cookie = os.path.join(self.dir, ".erlang.cookie")
        with open(cookie, "w") as handle:
            handle.write(os.urandom(16).hex().upper())
        os.chmod(cookie, 0o400)
        self.start()

    def ctl_run(self, *args, timeout=60):
        return _quiet([self.ctl, "-n", self.node, *args], env=self.env, timeout=timeout)

    def start(self):
        # A session of its own: the node outlives no signal meant for the harness.
        LoggedProcess([self.server], os.path.join(self.dir, "server.out"), name="private RabbitMQ",
                      env=self.env, cwd=self.dir, append=True, new_session=True)
        # await_startup fails at once while the node is not yet registered.
        wait_until(lambda: self.ctl_run("await_startup", "--timeout", "30", timeout=40).returncode == 0,
                   90, "private RabbitMQ", interval=0.5)

    def stop(self):
        self.ctl_run("stop", self.env["RABBITMQ_PID_FILE"], timeout=60)
        pid_file = self.env["RABBITMQ_PID_FILE"]
        if os.path.exists(pid_file):
            try:
                os.kill(int(open(pid_file).read().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError, PermissionError):
                pass

    def kill(self):
        self.stop()
        # The epmd this node started listens on our port only.
        _quiet(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env)
