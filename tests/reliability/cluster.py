"""Replicas as separate processes, and nginx in front of the ready ones.

`Replica` is one `nameko run` of one service module, as a Kubernetes pod runs
it. `LoadBalancer` is nginx with one upstream per service; a readiness loop
(the part Kubernetes' endpoints controller and an ingress controller play)
probes every replica's `/ready` and rewrites and reloads nginx whenever the
set of ready replicas changes. Between two probes nginx itself retries a
request on another replica when one refuses the connection, resets it or
answers 503 (a draining replica answers 503 without doing the work).
"""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import requests

from tests.support.processes import ROOT, LoggedProcess, ServedProcess, listening, stop_all

MODULES = {
    "auth": "services.auth.service",
    "events": "services.events.service",
    "messages": "services.messages.service",
    "realtime": "realtime.service",
}
# Paths → services, as in docs/API.md.
ROUTES = {
    "auth": r"^/(auth|users)(/|$)",
    "events": r"^/(events|calendar|calendars|media|posts|feed)(/|$|\.ics$)",
    "messages": r"^/(messages|notifications)(/|$)",
}


def available_services():
    return [name for name, module in MODULES.items()
            if os.path.exists(os.path.join(ROOT, *module.split(".")[:-1], "service.py"))]


class PortPool:
    def __init__(self, first, last):
        self._free = list(range(first, last + 1))
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            while self._free:
                port = self._free.pop(0)
                with socket.socket() as probe:
                    try:
                        probe.bind(("127.0.0.1", port))
                    except OSError:
                        continue
                return port
        raise RuntimeError("no free port left in the harness's range")


class Replica(ServedProcess):
    """One service's module alone in a process, as a Kubernetes pod runs it."""

    def __init__(self, service, port, env, log_dir, generation):
        self.service = service
        name = f"{service}-{generation}"
        super().__init__([MODULES[service]], port, os.path.join(log_dir, f"{name}-{port}.log"), name=name, env=env)

    def ready(self, timeout=1.0):
        return super().ready(timeout)

    def wait_until_ready(self, timeout=60):
        return super().wait_until_ready(timeout, interval=0.2)

    def terminate(self, grace=30):
        """SIGTERM, as Kubernetes stops a pod; returns the exit code and how long it took."""
        started = time.monotonic()
        code = self.stop(grace)
        return ("killed after grace" if code is None else code), time.monotonic() - started


class LoadBalancer:
    def __init__(self, base_dir, port):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.dir = os.path.join(base_dir, "nginx")
        os.makedirs(os.path.join(self.dir, "temp"), exist_ok=True)
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.process = None
        self.reloads = 0
        self.generation = 0

    @staticmethod
    def ensure_installed():
        if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
            return
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        for package in ("nginx-light", "nginx"):
            if subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env).returncode == 0:
                return
        raise RuntimeError("nginx could not be installed")

    def render(self, upstreams):
        temp = os.path.join(self.dir, "temp")
        lines = [
            "worker_processes 1;",
            f"pid {self.dir}/nginx.pid;",
            f"error_log {self.dir}/error.log warn;",
            "events { worker_connections 4096; }",
            "http {",
            f"  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;",
            f"  fastcgi_temp_path {temp}/fastcgi; uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;",
            "  log_format upstreams '$msec $request_method $uri $status $upstream_addr $upstream_status "
            "$request_time';",
            f"  access_log {self.access_log} upstreams;",
            "  client_max_body_size 20m;",
            # Every upstream change is a reload, and a reload closes the idle
            # keep-alive connections of clients; a client that sends on one at
            # that instant gets a reset. ingress-nginx changes endpoints without
            # reloading, so this artifact of the emulation is avoided instead:
            # one request per client connection.
            "  keepalive_timeout 0;",
            "  map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
            # A draining replica answers 503 before doing any work, and a
            # refused or reset connection did nothing we cannot repeat (every
            # write the load makes is idempotent by id), so nginx may send the
            # request to the next replica, POST included.
            "  proxy_next_upstream error timeout http_503 non_idempotent;",
            # No passive marking (max_fails=0): the readiness loop takes a
            # replica out, and when a store is down and every replica answers
            # 503, marking them all failed would turn those 503s (with
            # Retry-After) into nginx's own 502 "no live upstreams".
            "  proxy_next_upstream_tries 4;",
            "  proxy_next_upstream_timeout 15s;",
            "  proxy_connect_timeout 2s;",
            "  proxy_read_timeout 30s;",
            "  proxy_set_header Host $host;",
            "  proxy_set_header X-Forwarded-For $remote_addr;",
        ]
        for service, ports in sorted(upstreams.items()):
            lines.append(f"  upstream {service} {{")
            for port in ports:
                lines.append(f"    server 127.0.0.1:{port} max_fails=0;")
            lines.append("  }")
        lines += ["  server {", f"    listen 127.0.0.1:{self.port};"]
        for service, pattern in ROUTES.items():
            if service in upstreams:
                lines.append(f"    location ~ {pattern} {{ proxy_pass http://{service}; }}")
        if "realtime" in upstreams:
            lines += [
                "    location /socket.io/ {",
                "      proxy_pass http://realtime;",
                "      proxy_http_version 1.1;",
                "      proxy_set_header Upgrade $http_upgrade;",
                "      proxy_set_header Connection $connection_upgrade;",
                "      proxy_read_timeout 3600s;",
                "    }",
            ]
        # Which configuration answers: a reload takes effect a moment after
        # SIGHUP, and until then the old workers route by the old upstreams.
        lines.append(f'    location = /__lb/generation {{ access_log off; return 200 "{self.generation}"; }}')
        lines += ["    location / { return 404; }", "  }", "}"]
        return "\n".join(lines) + "\n"

    def apply(self, upstreams):
        """Route to these upstreams; returns once nginx answers with them
        (a replica counts as routed only then)."""
        self.generation += 1
        with open(self.conf_path + ".new", "w") as handle:
            handle.write(self.render(upstreams))
        os.replace(self.conf_path + ".new", self.conf_path)
        if self.process is None:
            self.process = LoggedProcess(
                ["nginx", "-p", self.dir, "-c", self.conf_path, "-g", "daemon off;"], name="nginx",
                stderr_path=os.path.join(self.dir, "stderr.log"), append=True)
            self.process.wait_until_ready(lambda: listening(self.port), timeout=10, interval=0.1)
            return
        self.process.ask_to_stop(signal.SIGHUP)  # not a stop: nginx reloads its configuration
        self.reloads += 1
        self._wait_generation(self.generation)

    def _wait_generation(self, generation, timeout=10):
        deadline, seen = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            try:
                answer = requests.get(self.base_url + "/__lb/generation", timeout=1).text
            except requests.RequestException:
                answer = None
            # Old and new workers both accept for a moment: wait for a few in a row.
            seen = seen + 1 if answer == str(generation) else 0
            if seen >= 3:
                return
            time.sleep(0.02)
        raise RuntimeError(f"nginx did not load configuration {generation} within {timeout}s")

    def stop(self):
        if self.process is not None:
            self.process.stop(grace=10, signum=signal.SIGQUIT)  # graceful: finish requests, close

    def log_size(self):
        try:
            return os.path.getsize(self.access_log)
        except OSError:
            return 0

    def log_since(self, offset):
        """Requests nginx answered since `offset`: (total, retried on another replica, by status)."""
        total, retried, statuses = 0, 0, {}
        try:
            with open(self.access_log) as handle:
                handle.seek(offset)
                for line in handle:
                    fields = line.split(" ")
                    if len(fields) < 6:
                        continue
                    total += 1
                    statuses[fields[3]] = statuses.get(fields[3], 0) + 1
                    if "," in line.split(" ", 5)[5]:
                        retried += 1
        except OSError:
            pass
        return {"requests": total, "retried_by_nginx": retried, "statuses": statuses}


class Cluster:
    """Every service's replicas, the load balancer and the readiness loop."""

    PROBE_PERIOD_SECONDS = 1.0

    def __init__(self, base_dir, env, lb_port, ports, services=None):
        self.env = env
        self.log_dir = os.path.join(base_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.ports = ports
        self.services = services or available_services()
        self.replicas = {service: [] for service in self.services}
        self.generation = 0
        self.lb = LoadBalancer(base_dir, lb_port)
        self._routed = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop = None

    def start_replica(self, service):
        with self._lock:
            self.generation += 1
            generation = self.generation
        replica = Replica(service, self.ports.take(), self.env, self.log_dir, generation)
        with self._lock:
            self.replicas[service].append(replica)
        return replica

    def retire(self, replica):
        with self._lock:
            if replica in self.replicas[replica.service]:
                self.replicas[replica.service].remove(replica)

    def start(self, per_service=2):
        self.lb.ensure_installed()
        started = [self.start_replica(service) for service in self.services for _ in range(per_service)]
        for replica in started:
            replica.wait_until_ready(timeout=90)
        self.refresh()
        self._loop = threading.Thread(target=self._readiness_loop, name="readiness", daemon=True)
        self._loop.start()

    def _readiness_loop(self):
        while not self._stop.wait(self.PROBE_PERIOD_SECONDS):
            try:
                self.refresh()
            except Exception:  # the loop must outlive a failed probe or reload
                pass

    def refresh(self):
        """Probe every replica; route to the ready ones. When none of a
        service's replicas is ready (a store is down), keep routing to the
        live ones, as a load balancer that fails open does: their answer
        (often a 503) beats a connection refused."""
        with self._lock:
            replicas = {service: list(found) for service, found in self.replicas.items()}
        upstreams = {}
        for service, found in replicas.items():
            ready = [replica.port for replica in found if replica.alive() and replica.ready(timeout=1.0)]
            upstreams[service] = ready or [replica.port for replica in found if replica.alive()] or \
                [replica.port for replica in found] or [self.ports_placeholder]
        routed = {service: sorted(ports) for service, ports in upstreams.items()}
        if routed != self._routed:
            self.lb.apply(routed)
            self._routed = routed

    ports_placeholder = 9  # discard: nothing listens there, nginx answers 502

    def wait_routed(self, replica, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._routed and replica.port in self._routed.get(replica.service, []):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{replica.name} not routed within {timeout}s")

    def wait_unrouted(self, replica, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._routed and replica.port not in self._routed.get(replica.service, []):
                return
            time.sleep(0.1)

    def all_replicas(self):
        with self._lock:
            return [replica for found in self.replicas.values() for replica in found]

    def stop(self):
        self._stop.set()
        if self._loop is not None:
            self._loop.join(5)
        stop_all(self.all_replicas(), grace=20)
        self.lb.stop()
